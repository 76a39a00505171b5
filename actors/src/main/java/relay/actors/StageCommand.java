package relay.actors;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import relay.stages.model.LmHead;
import relay.transport.TensorPayload;
import relay.transport.WireMessage;

/**
 * What a stage actor takes. Every command may cross a JVM (Protobuf through {@link Codecs}). Tensors travel
 * as {@link TensorPayload}s: within a JVM the sender's tensor itself, handed over.
 */
public sealed interface StageCommand extends WireMessage {

    /**
     * Every stage, by index, once all are built: each stage finds its neighbours and its device's first and
     * last stages here, and the tensor channel of each one's node ("" where there is none: one JVM).
     */
    record Connect(List<ActorRef<StageCommand>> stages, List<String> channels) implements StageCommand {
        public Connect {
            if (stages.size() != channels.size()) throw new IllegalArgumentException(stages.size() + " stages but " + channels.size() + " channels");
            stages = List.copyOf(stages);
            channels = List.copyOf(channels);
        }
    }

    /**
     * A microbatch's forward (or backward) has passed through every stage of this device. A device runs its
     * plan one action at a time across its stages: its first stage starts the next forward only when the
     * previous one has left the device (its last stage the next backward likewise), so a microbatch goes
     * through the whole device before the next one competes for its thread.
     */
    record LeftDevice(Position pos, boolean forward) implements StageCommand {}

    /**
     * A microbatch's token ids, to the embedding, with the position ids of packed examples (null: one example to a
     * sequence), which the embedding hands on with its activations.
     */
    record Tokens(Position pos, int[] ids, int[] positions) implements StageCommand {
        public Tokens(Position pos, int[] ids) {
            this(pos, ids, null);
        }
    }

    /**
     * A replica's share of a microbatch's next-token targets, to its head, with how many targets the whole step (or
     * evaluation) counts, over every microbatch and replica (negative targets are not counted): a pass's loss is the
     * mean over all of them, so a share weighs as many as it counts.
     */
    record Targets(Position pos, int[] ids, int countedInPass) implements StageCommand {
        /**
         * What this share's mean loss weighs, the pass's loss being the mean of the microbatches' and a microbatch's the
         * mean of its replicas' shares: {@link LmHead#weightInStep} over the pass's microbatches × replicas shares —
         * 1 exactly where every share counts as many (unmasked data).
         */
        public float weight(int replicas) {
            return LmHead.weightInStep(LmHead.counted(ids), replicas * pos.microbatches(), countedInPass);
        }
    }

    /**
     * Activations flowing forward, with the microbatch's position ids (null: one example to a sequence): every block
     * attends within examples by them, and keeps them for its backward.
     */
    record Forward(Position pos, TensorPayload activation, int[] positions) implements StageCommand {
        public Forward(Position pos, TensorPayload activation) {
            this(pos, activation, null);
        }
    }

    /** Activation gradients flowing backward. */
    record Backward(Position pos, TensorPayload gradient) implements StageCommand {}

    /** LISA, to a block: it trains from this step on, or is frozen (its optimizer state is freed). */
    record SetTrainable(long step, boolean trainable) implements StageCommand {}

    /**
     * RSO, to a block before step {@code step}: merge the subspaces' B into the weights and draw those of
     * step {@code draw}'s seed; B's optimizer state starts afresh when {@code fresh} (a period's first step).
     */
    record Redraw(long step, long draw, boolean fresh) implements StageCommand {}

    /** A part of the head's summed gradient of a tied matrix, rows from {@code row} on, to the embedding at the end of a pass. */
    record TiedGradient(long step, int row, TensorPayload gradient) implements StageCommand {}

    /** A part of the tied matrix after its update, rows from {@code row} on, from the embedding back to the head's replica. */
    record TiedWeights(long step, int row, TensorPayload weights) implements StageCommand {}

    /**
     * A part of a parameter's gradient summed over the pass's shares of the replicas from the one after its owner up
     * to {@code replica} (rows from {@code row} on), from that replica's stage to the next replica's: the chain that
     * ends at the replica owning the parameter's update ({@link ReplicaExchange}).
     */
    record ReplicaGradient(Position pass, String parameter, int replica, int row, TensorPayload gradient) implements StageCommand {}

    /** This replica's stage has its own gradient of a parameter ready: the replica before it in the chain may pass its partial sum on. */
    record ReplicaReady(Position pass, String parameter) implements StageCommand {}

    /** A part of a parameter after its owner's update (rows from {@code row} on), along the chain from the owner to every other replica. */
    record ReplicaWeights(Position pass, String parameter, int row, TensorPayload weights) implements StageCommand {}

    /**
     * Frees the tensor a message carries when nobody will take it — dropped after a fault, or dead-lettered to a stage
     * that has stopped — so its memory, and a transport's receive buffer it may sit in, are given back.
     */
    static void discardPayload(StageCommand m) {
        TensorPayload p = m instanceof Forward f ? f.activation() : m instanceof Backward b ? b.gradient()
                : m instanceof TiedGradient t ? t.gradient() : m instanceof TiedWeights t ? t.weights()
                : m instanceof ReplicaGradient r ? r.gradient() : m instanceof ReplicaWeights r ? r.weights() : null;
        if (p != null) p.discard();
    }

    /** Report the stage's parameters' values (between steps). */
    record CollectWeights() implements StageCommand {}

    /** Report the stage's optimizer state, "parameter/role" → values (between steps). */
    record CollectState() implements StageCommand {}

    /**
     * Parts of the optimizer state of a checkpoint that belong to this stage's parameters (between steps, before
     * a resumed run's first); the stage takes them once the last part is in.
     */
    record RestoreState(List<TensorPart> parts, boolean last) implements StageCommand {}

    /** Report the trace recorded so far (the stage's buffer starts empty again). */
    record CollectTrace() implements StageCommand {}

    /**
     * At a step boundary: take a copy of the stage's weights and optimizer state (answered at once) and write it
     * as the stage's shard of the checkpoint {@code directory} in the background (answered when written).
     */
    record WriteShard(long step, String directory) implements StageCommand {}

    /**
     * Before anything of the next step: take a copy of what the stage owns (the weights it updates, its optimizer
     * state) for the snapshot of step {@code step}, the state after that many steps (answered at once), then hand it
     * to {@code holders} — its own node's host and the next node's — in the background, through their nodes' tensor
     * channels ({@code channels}, "" for a tell). A stage still sending its previous snapshot skips it: snapshots
     * never hold up a step for long. Holders forget the stage's snapshots before {@code keepFrom}, a step every
     * holder has whole.
     */
    record TakeSnapshot(long step, long keepFrom, List<ActorRef<StageHost.Command>> holders, List<String> channels)
            implements StageCommand {
        public TakeSnapshot {
            holders = List.copyOf(holders);
            channels = List.copyOf(channels);
        }
    }

    /**
     * Part of a snapshot a holder sends back to a stage rebuilt after a lost node: weights, or ({@code state})
     * optimizer state; {@code last} ends one holder's parts. The stage takes it all once {@code sources} holders
     * ended theirs (two for a head whose tied table is the embedding's).
     */
    record RestoreSnapshot(int sources, boolean state, List<TensorPart> parts, boolean last) implements StageCommand {
        public RestoreSnapshot {
            parts = List.copyOf(parts);
        }
    }
}
