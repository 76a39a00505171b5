package relay.actors;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.Executor;
import java.util.function.BiFunction;
import org.apache.pekko.actor.typed.ActorRef;
import relay.optimizers.Method;
import relay.stages.io.CheckpointShard;
import relay.stages.io.SafeTensors;
import relay.stages.layers.Parameter;
import relay.stages.memory.Category;
import relay.stages.memory.MemoryLedger;
import relay.stages.tensor.Device;
import relay.transport.TensorChannel;

/**
 * A stage's weights and optimizer state as they leave it between steps — collected, written as its shard
 * of a checkpoint, or sent as its snapshot to the nodes that hold it — and as they come back: a checkpoint's
 * optimizer state, or a whole snapshot. Tensors leave in messages of bounded
 * size, the last one marked.
 */
final class StageState {
    /**
     * A chaos switch for tests: a JVM started with {@code -Drelay.chaos.halt-mid-snapshot=N} ends at once, as if killed,
     * when a stage of it has handed its snapshot of step N to its own node's host and not yet to the next node's.
     */
    private static final long HALT_MID_SNAPSHOT = Long.getLong("relay.chaos.halt-mid-snapshot", -1);

    private final StageSpec spec;
    private final Device device;
    private final StageRole role;
    private final ActorRef<StageEvent> events;
    /** The node's tensor channel (null in one JVM): snapshots go to other nodes' holders through it. */
    private final TensorChannel channel;
    private final List<TensorPart> restoring = new ArrayList<>();
    /** A snapshot's parts coming back after a lost node: weights, state, and how many holders have sent all theirs. */
    private final List<TensorPart> snapshotWeights = new ArrayList<>(), snapshotState = new ArrayList<>();
    private int snapshotSources;
    /** Set while the previous snapshot is still going out: the next one is skipped rather than wait. */
    private final AtomicBoolean sending = new AtomicBoolean();

    StageState(StageSpec spec, Device device, StageRole role, ActorRef<StageEvent> events, TensorChannel channel) {
        this.channel = channel;
        this.spec = spec;
        this.device = device;
        this.role = role;
        this.events = events;
    }

    void reportWeights() {
        inParts(TensorPart.split(weights(role.parameters()), TensorPart.MESSAGE_FLOATS), (parts, last) -> new StageEvent.Weights(spec.id(), parts, last));
    }

    void reportOptimizerState() {
        inParts(TensorPart.split(role.state(), TensorPart.MESSAGE_FLOATS), (parts, last) -> new StageEvent.OptimizerState(spec.id(), parts, last));
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
            events.tell(new StageEvent.Restored(spec.id(), Set.copyOf(role.state().keySet()), null));
        } catch (IllegalArgumentException e) {
            events.tell(new StageEvent.Restored(spec.id(), Set.of(), spec.name() + ": " + e.getMessage()));
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
        // A tied table's replica in the head is the embedding's to write; the weights, which every replica of the pipeline holds
        // alike, replica 0's. Each replica writes the optimizer state it keeps.
        CheckpointShard shard = new CheckpointShard(spec.name(), spec.model(), spec.config().method().key(),
                spec.config().precision().weights(), spec.replica() == 0 ? weights(role.updated()) : List.of(), role.state());
        long bytes = shard.bytes();
        MemoryLedger ledger = device.memory();
        ledger.allocated(Category.WORKSPACE, bytes);
        events.tell(new StageEvent.ShardTaken(spec.id(), m.step()));
        writer.execute(() -> {
            StageEvent.ShardWritten written;
            try {
                written = new StageEvent.ShardWritten(spec.id(), m.step(), shard.write(Path.of(m.directory())), null);
            } catch (IOException e) {
                written = new StageEvent.ShardWritten(spec.id(), m.step(), List.of(), spec + ": " + e.getMessage());
            } catch (RuntimeException e) {
                written = new StageEvent.ShardWritten(spec.id(), m.step(), List.of(), spec + " could not write its shard of "
                        + m.directory() + ": " + e);
            } finally {
                ledger.released(Category.WORKSPACE, bytes);
            }
            events.tell(written);
        });
    }

    /**
     * A snapshot in memory: the stage's copy of what it owns — what its checkpoint shard holds, the weights it updates
     * and its optimizer state — is taken here, before anything of the next step, on the device's thread, and
     * reported at once; {@code background} (the node's writer) then hands it to each holder while the stage trains on. The copy counts as {@link Category#SNAPSHOTS} on the device until it is sent.
     */
    void snapshot(StageCommand.TakeSnapshot m, Executor background) {
        if (!sending.compareAndSet(false, true)) {
            events.tell(new StageEvent.SnapshotTaken(spec.id(), m.step(), true));
            return;
        }
        // What a checkpoint's shard holds: LoRA's base never changes (a rebuilt stage reads it as it started), its adapters are state.
        List<SafeTensors.Tensor32> weights = spec.config().method() == Method.LORA ? List.of() : weights(role.updated());
        Map<String, float[]> state = role.state();
        long floats = 0;
        for (SafeTensors.Tensor32 t : weights) floats += t.values().length;
        for (float[] v : state.values()) floats += v.length;
        long bytes = floats * Float.BYTES;
        MemoryLedger ledger = device.memory();
        ledger.allocated(Category.SNAPSHOTS, bytes);
        events.tell(new StageEvent.SnapshotTaken(spec.id(), m.step(), false));
        background.execute(() -> {
            try {
                List<List<TensorPart>> w = TensorPart.split(weights, TensorPart.MESSAGE_FLOATS), st = TensorPart.split(state, TensorPart.MESSAGE_FLOATS);
                for (int h = 0; h < m.holders().size(); h++) {
                    if (h == 1 && m.step() == HALT_MID_SNAPSHOT) Runtime.getRuntime().halt(137);
                    ActorRef<StageHost.Command> holder = m.holders().get(h);
                    String channel = m.channels().get(h);
                    for (List<TensorPart> g : w) {
                        Sender.deliver(this.channel, channel, holder, new StageHost.HoldSnapshot(spec.id(), m.step(), m.keepFrom(), false, g, false, events));
                    }
                    for (int i = 0; i < st.size(); i++) {
                        Sender.deliver(this.channel, channel, holder, new StageHost.HoldSnapshot(spec.id(), m.step(), m.keepFrom(), true, st.get(i),
                                i == st.size() - 1, events));
                    }
                }
            } finally {
                ledger.released(Category.SNAPSHOTS, bytes);
                sending.set(false);
            }
        });
    }

    /**
     * A snapshot's parts gather until every holder sent its last; then the stage's parameters and optimizer state
     * are set from them as a checkpoint's would set them, and the stage reports {@link StageEvent.Restored}.
     */
    void restoreSnapshot(StageCommand.RestoreSnapshot m) {
        (m.state() ? snapshotState : snapshotWeights).addAll(m.parts());
        if (m.last()) snapshotSources++;
        if (snapshotSources < m.sources()) return;
        try {
            Map<String, float[]> weights = TensorPart.assembleValues(snapshotWeights);
            for (Parameter p : role.parameters()) {
                float[] v = weights.get(p.name());
                if (v == null && spec.config().method() != Method.LORA) throw new IllegalArgumentException("the snapshot holds no " + p.name());
                if (v != null) p.value().copyFrom(v);
            }
            role.restore(TensorPart.assembleValues(snapshotState));
            events.tell(new StageEvent.Restored(spec.id(), Set.copyOf(role.state().keySet()), null));
        } catch (IllegalArgumentException e) {
            events.tell(new StageEvent.Restored(spec.id(), Set.of(), spec.name() + ": " + e.getMessage()));
        } finally {
            snapshotWeights.clear();
            snapshotState.clear();
            snapshotSources = 0;
        }
    }

    /** Copies of these parameters' values as the model computes with them. */
    private List<SafeTensors.Tensor32> weights(List<Parameter> parameters) {
        List<SafeTensors.Tensor32> out = new ArrayList<>();
        for (Parameter p : parameters) out.add(new SafeTensors.Tensor32(p.name(), p.value().shape(), role.values(p)));
        return out;
    }
}
