package relay.actors;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.function.BiFunction;
import org.apache.pekko.actor.typed.ActorRef;
import relay.stages.io.CheckpointShard;
import relay.stages.io.SafeTensors;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.Device;

/**
 * A stage's weights and optimizer state as they leave it between steps — collected, or written as its shard
 * of a checkpoint — and a checkpoint's optimizer state as it comes back. Tensors leave in messages of bounded
 * size, the last one marked.
 */
final class StageState {
    private final StageSpec spec;
    private final Device device;
    private final StageRole role;
    private final ActorRef<StageEvent> events;
    private final List<TensorPart> restoring = new ArrayList<>();

    StageState(StageSpec spec, Device device, StageRole role, ActorRef<StageEvent> events) {
        this.spec = spec;
        this.device = device;
        this.role = role;
        this.events = events;
    }

    void reportWeights() {
        inParts(TensorPart.split(weights(role.parameters()), TensorPart.MESSAGE_FLOATS), (parts, last) -> new StageEvent.Weights(spec.stage(), parts, last));
    }

    void reportOptimizerState() {
        inParts(TensorPart.split(role.state(), TensorPart.MESSAGE_FLOATS), (parts, last) -> new StageEvent.OptimizerState(spec.stage(), parts, last));
    }

    private void inParts(List<List<TensorPart>> groups, BiFunction<List<TensorPart>, Boolean, StageEvent> event) {
        for (int i = 0; i < groups.size(); i++) events.tell(event.apply(groups.get(i), i == groups.size() - 1));
    }

    /** Parts of a checkpoint's state gather until the last; then the stage takes what belongs to its parameters. */
    void restore(StageCommand.RestoreState m) {
        restoring.addAll(m.parts());
        if (!m.last()) return;
        try {
            role.restore(TensorPart.assembleValues(restoring));
            events.tell(new StageEvent.Restored(spec.stage(), Set.copyOf(role.state().keySet()), null));
        } catch (IllegalArgumentException e) {
            events.tell(new StageEvent.Restored(spec.stage(), Set.of(), spec.name() + ": " + e.getMessage()));
        } finally {
            restoring.clear();
        }
    }

    /**
     * A checkpoint: the stage's copy is taken here, between steps on the device's thread, and reported at once;
     * {@code writer} (the node's checkpoint writer) then writes it while the stage trains on. The copy counts as
     * workspace until it is written.
     */
    void writeShard(StageCommand.WriteShard m, Executor writer) {
        // A tied table's replica in the head is the embedding's to write.
        CheckpointShard shard = new CheckpointShard(spec.name(), spec.model(), spec.config().method().key(),
                spec.config().precision().weights(), weights(role.updated()), role.state());
        long bytes = shard.bytes();
        MemoryLedger ledger = device.memory();
        ledger.allocated(Category.WORKSPACE, bytes);
        events.tell(new StageEvent.ShardTaken(spec.stage(), m.step()));
        writer.execute(() -> {
            StageEvent.ShardWritten written;
            try {
                written = new StageEvent.ShardWritten(spec.stage(), m.step(), shard.write(Path.of(m.directory())), null);
            } catch (IOException e) {
                written = new StageEvent.ShardWritten(spec.stage(), m.step(), List.of(), spec + ": " + e.getMessage());
            } catch (RuntimeException e) {
                written = new StageEvent.ShardWritten(spec.stage(), m.step(), List.of(), spec + " could not write its shard of "
                        + m.directory() + ": " + e);
            } finally {
                ledger.released(Category.WORKSPACE, bytes);
            }
            events.tell(written);
        });
    }

    /** Copies of these parameters' values as the model computes with them. */
    private List<SafeTensors.Tensor32> weights(List<Parameter> parameters) {
        List<SafeTensors.Tensor32> out = new ArrayList<>();
        for (Parameter p : parameters) out.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), role.values(p)));
        return out;
    }
}
