package relay.actors;

import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import relay.stages.io.CheckpointShard;
import relay.transport.WireMessage;

/**
 * What a stage reports to its coordinator: each event a record with only its own fields, every one able
 * to cross a JVM. The stage never names the coordinator's protocol, only this one.
 */
public sealed interface StageEvent extends WireMessage {
    /** The reporting stage's index. */
    int stage();

    /**
     * The stage is built on its device; its parameters' names tell where weights and optimizer state belong;
     * tensors for it go through its node's tensor channel at {@code channel} ("" where there is none: one JVM); its
     * device computes with {@code threads} threads.
     */
    record Ready(int stage, ActorRef<StageCommand> ref, List<String> parameters, String channel, int threads) implements StageEvent {}

    /** The stage knows every other stage (it took {@link StageCommand.Connect}). */
    record Connected(int stage) implements StageEvent {}

    /** The head's loss of one microbatch (mean over its tokens). */
    record Loss(int stage, Position pos, double loss) implements StageEvent {}

    /**
     * The stage's share of a pass is done: its squared gradient norm (a norm pass), the most updates a
     * microbatch's weights moved between its forward and backward (eager mode), and its compute time.
     */
    record PassDone(int stage, Position pos, double normSquared, long staleness, long busyNanos) implements StageEvent {}

    /** A block took LISA's {@link StageCommand.SetTrainable}. */
    record TrainableSet(int stage, long step, boolean trainable) implements StageEvent {}

    /** A block took RSO's {@link StageCommand.Redraw} for step {@code step}. */
    record Redrawn(int stage, long step) implements StageEvent {}

    /** Why a stage failed. */
    enum Failure {
        /** An error of the stage's code or machine. */
        FAULT,
        /** The loss is no longer finite: training diverged. */
        DIVERGED,
        /** The stage's input cannot be used (a model file that does not fit, state of another model). */
        INPUT,
        /** A message the stage's role cannot take. */
        PROTOCOL,
        /** The stage is gone: its node was lost (downed, killed, cut off) or the stage stopped. */
        NODE_LOST
    }

    /** A stage failed at a position (null: outside a pass, e.g. while it was built); it does no more work after a fault. */
    record Failed(int stage, Position pos, Failure kind, String reason) implements StageEvent {}

    /** Parts of the stage's parameters' values ({@link TensorPart#split}); the last part of its answer says so. */
    record Weights(int stage, List<TensorPart> parts, boolean last) implements StageEvent {}

    /** Parts of the stage's optimizer state, "parameter/role" → values; the last part of its answer says so. */
    record OptimizerState(int stage, List<TensorPart> parts, boolean last) implements StageEvent {}

    /** The optimizer state the stage holds after {@link StageCommand.RestoreState}, or (error not null) why the values did not fit. */
    record Restored(int stage, Set<String> held, String error) implements StageEvent {}

    /** The stage's trace spans since the last report. */
    record Trace(int stage, List<TraceEvent> events) implements StageEvent {}

    /** The stage took its copy for checkpoint {@code step} ({@link StageCommand.WriteShard}) and trains on. */
    record ShardTaken(int stage, long step) implements StageEvent {}

    /** The stage's shard of checkpoint {@code step} is written and synced (files), or (error not null) why not. */
    record ShardWritten(int stage, long step, List<CheckpointShard.File> files, String error) implements StageEvent {
        public ShardWritten {
            files = List.copyOf(files);
        }
    }

    /** The stage took its copy for the snapshot of step {@code step}; {@code skipped} when it was still sending the one before. */
    record SnapshotTaken(int stage, long step, boolean skipped) implements StageEvent {}

    /** {@code holder}, a node's host, holds the whole snapshot of step {@code step} of stage {@code stage}. */
    record SnapshotHeld(int stage, long step, ActorRef<StageHost.Command> holder) implements StageEvent {}
}
