package relay.actors;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import relay.stages.memory.Category;
import relay.stages.tensor.cpu.CpuDevice;
import relay.transport.WireMessage;

/**
 * A node's stage host: it owns the node's devices, spawns stage actors on request from their specs (each on
 * its device's one-thread dispatcher, where it builds itself), and reports its devices' memory. A device is
 * the node's, not a stage's: the stages on it share its thread, so they use it one at a time.
 */
public final class StageHost {
    private StageHost() {}

    /** What a stage host takes. */
    public sealed interface Command extends WireMessage {}

    /** Spawn the stage a spec describes; it reports to {@code events} (Ready, or Failed if it cannot be built). */
    public record Spawn(StageSpec spec, ActorRef<StageEvent> events) implements Command {}

    /** Report each device's peak bytes per category since the last report, and start a new window. */
    public record ReportMemory(ActorRef<DeviceMemory> replyTo) implements Command {}

    /** Peak bytes per category of each of a host's devices, by device index. */
    public record DeviceMemory(Map<Integer, Map<Category, Long>> peaks) implements WireMessage {}

    /** The dispatcher of one device: one thread, so the device's stages never compute at the same time. */
    static String dispatcher(int device) {
        return "relay-device-" + device;
    }

    /** Configuration of the dispatchers of these devices, to layer into the actor system's config. */
    public static Config dispatchers(List<Integer> devices) {
        StringBuilder s = new StringBuilder();
        for (int d : devices) {
            s.append(dispatcher(d)).append(" { type = Dispatcher, executor = \"thread-pool-executor\", ")
                    .append("thread-pool-executor { fixed-pool-size = 1 }, throughput = 100 }\n");
        }
        return ConfigFactory.parseString(s.toString());
    }

    /** A host of these devices (pipeline device indices), each computing with {@code threads} CPU threads. */
    public static Behavior<Command> create(List<Integer> devices, int threads) {
        return Behaviors.setup(ctx -> {
            Map<Integer, CpuDevice> byIndex = new LinkedHashMap<>();
            for (int d : devices) byIndex.put(d, new CpuDevice("cpu" + d, threads));
            return Behaviors.receive(Command.class)
                    .onMessage(Spawn.class, m -> {
                        CpuDevice device = byIndex.get(m.spec().device());
                        if (device == null) {
                            m.events().tell(new StageEvent.Failed(m.spec().stage(), null, StageEvent.Failure.FAULT,
                                    m.spec() + " is placed on device " + m.spec().device() + ", which this node does not have " + devices));
                        } else {
                            ctx.spawn(StageActor.create(m.spec(), device, m.events()), m.spec().name(),
                                    DispatcherSelector.fromConfig(dispatcher(m.spec().device())));
                        }
                        return Behaviors.same();
                    })
                    .onMessage(ReportMemory.class, m -> {
                        Map<Integer, Map<Category, Long>> peaks = new LinkedHashMap<>();
                        byIndex.forEach((d, device) -> {
                            peaks.put(d, new EnumMap<>(device.memory().peaks()));
                            device.memory().resetPeaks();
                        });
                        m.replyTo().tell(new DeviceMemory(peaks));
                        return Behaviors.same();
                    })
                    // The stages, its children, have stopped and freed their tensors by now.
                    .onSignal(PostStop.class, s -> {
                        byIndex.values().forEach(CpuDevice::close);
                        return Behaviors.same();
                    })
                    .build();
        });
    }
}
