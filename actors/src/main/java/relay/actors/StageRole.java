package relay.actors;

import java.util.List;
import java.util.Map;
import relay.optimizers.Training;
import relay.stages.io.HfModelDirectory;
import relay.stages.layers.Linear;
import relay.stages.layers.Parameter;
import relay.stages.layers.TransformerBlock;
import relay.stages.model.Embedding;
import relay.stages.model.Initializer;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Device;

/**
 * What a stage computes: the embedding, one transformer block, or the head with its loss. Each role has its
 * own forward, backward and end of pass, and says which commands it takes; the stage actor around it owns
 * the protocol, the order of work on the device, tracing and failures.
 */
sealed interface StageRole extends AutoCloseable permits EmbeddingStage, BlockStage, HeadStage {

    /**
     * The role a spec describes, built on its device: layers initialized from the seed (the same values
     * wherever the stage is placed), then read from the spec's model directory if it names one.
     */
    static StageRole build(StageSpec spec, Device device, TraceRecorder trace) {
        ModelConfig cfg = spec.model();
        Initializer init = new Initializer(device, spec.seed(), spec.config().precision().weights());
        boolean tied = cfg.tiedEmbeddings();
        StageRole role;
        if (spec.isEmbedding()) {
            Embedding e = Embedding.create(cfg, init);
            e.setActivations(spec.config().precision().activations());
            role = new EmbeddingStage(e, device, optimizer(spec, training(spec, List.of()), e.parameters(), tied ? e.tokenTable() : null, trace), tied);
        } else if (spec.isHead()) {
            LmHead h = LmHead.create(cfg, init, tied ? Embedding.tokenTable(cfg, init) : null);
            role = new HeadStage(h, device, optimizer(spec, training(spec, List.of()), h.parameters(true), tied ? h.weight() : null, trace), tied,
                    spec.placement().replicas());
        } else {
            TransformerBlock b = Model.block(cfg, spec.stage() - 1, init);
            b.setRecompute(spec.config().recompute());
            b.setActivations(spec.config().precision().activations());
            Training t = training(spec, b.linears());
            role = new BlockStage(b, t.terms(), device, optimizer(spec, t, BlockStage.parameters(b, t.terms()), null, trace),
                    spec.config().schedule().splitsBackward());
        }
        if (spec.weights() == null) return role;
        try (HfModelDirectory.Weights w = HfModelDirectory.Weights.open(spec.weights())) {
            if (!w.config().equals(cfg)) {
                throw new IllegalArgumentException(spec.weights().resolve("config.json") + " describes another model than the pipeline's");
            }
            w.read(role.parameters());
            return role;
        } catch (RuntimeException e) {
            role.close();
            throw e;
        }
    }

    private static Training training(StageSpec spec, List<Linear> linears) {
        return spec.config().method().training(linears, spec.config().settings());
    }

    private static StageOptimizer optimizer(StageSpec spec, Training training, List<Parameter> parameters, Parameter tied, TraceRecorder trace) {
        PipelineConfig pc = spec.config();
        int replicas = spec.placement().replicas();
        // The head's replica of a tied table is updated by the embedding, so it is not the head's to own among its replicas.
        ReplicaExchange group = replicas == 1 ? null : new ReplicaExchange(spec.replica(), replicas,
                parameters.stream().filter(training.updates()).filter(p -> !(spec.isHead() && p == tied)).toList());
        return new StageOptimizer(training, parameters, pc.settings().schedule(), pc.settings().clipping(), pc.mode(), tied, trace,
                pc.settings().seed(), group);
    }

    /** Every parameter the stage holds (the head's replica of a tied table included). */
    List<Parameter> parameters();

    /** What the stage's optimizer updates (its parameters, unless another stage owns a tied one's update). */
    default List<Parameter> updated() {
        return parameters();
    }

    StageOptimizer optimizer();

    /** The parameters' values as the model computes with them, by parameter (a block's low-rank terms folded into its weights). */
    default float[] values(Parameter p) {
        return p.value().toArray();
    }

    /** Names of everything whose state the stage keeps: its parameters and any low-rank terms' matrices. */
    default List<String> stateOwners() {
        return parameters().stream().map(Parameter::name).toList();
    }

    /** The state a checkpoint keeps of this stage beside its weights, "parameter/role" → values. */
    default Map<String, float[]> state() {
        return optimizer().export();
    }

    /** Sets that state from a checkpoint's values (a resumed run). */
    default void restore(Map<String, float[]> values) {
        optimizer().restore(updated(), values);
    }

    /** Whether the role takes a command that carries data for it (tokens, targets, activations, gradients, LISA, tied tensors). */
    boolean takes(StageCommand c);

    /** A new pass begins. */
    void startPass(Position pass);

    /** Whether forward j's inputs are here. */
    boolean canForward(int j, Inbox in);

    void forward(Position pos, Inbox in, Outbox out);

    /** Whether backward j's gradient is here. */
    default boolean canBackward(int j, Inbox in) {
        return in.backwards.containsKey(j);
    }

    /** The backward of microbatch pos, or with a split schedule only its input gradient (a block's B). */
    void backward(Position pos, Inbox in, Outbox out);

    /** A split schedule's W: the weight gradients of a microbatch whose B ran, handed to the optimizer. Blocks only. */
    default void weightGradients(Position pos) {
        throw new IllegalStateException("only a block splits its backward");
    }

    /** LISA's {@link StageCommand.SetTrainable}: the role trains from now on, or is frozen. Blocks only (see {@link #takes}). */
    default void setTrainable(boolean trainable) {
        throw new IllegalStateException("only a block is frozen or unfrozen");
    }

    /** RSO's {@link StageCommand.Redraw}: the role's subspaces of step {@code draw}'s seed replace the current ones. Blocks only. */
    default void redraw(long draw, boolean fresh) {
        throw new IllegalStateException("only a block redraws subspaces");
    }

    /**
     * The stage's last action of the pass is done; returns whether its share is complete (false while a tied
     * exchange or its replicas' exchange is pending).
     */
    boolean finishPass(Position pass, Outbox out);

    /** A tied-matrix message ({@link StageCommand.TiedGradient}, {@link StageCommand.TiedWeights}); returns whether the pass's share is now complete. */
    default boolean tied(StageCommand m, Position pass, Outbox out) {
        throw new IllegalStateException("no tied matrix here");
    }

    /**
     * A message of its replicas' exchange ({@link StageCommand.ReplicaGradient}, {@link StageCommand.ReplicaReady},
     * {@link StageCommand.ReplicaWeights}); returns whether the pass's share is now complete.
     */
    default boolean fromReplica(StageCommand m, Position pass, Outbox out) {
        optimizer().fromReplica(m, out);
        return completeShare(pass, out);
    }

    /**
     * Once the stage's own actions of an updating or norm pass are done: what can be finished of its share is (the
     * embedding hands the head its new tied table once settled); returns whether the share is complete — the replicas'
     * exchange settled, and the role's own.
     */
    default boolean completeShare(Position pass, Outbox out) {
        return optimizer().settled();
    }

    /** This pass's squared gradient norm (a norm pass), known once the share is complete. */
    default double normSquared() {
        return optimizer().normSquared();
    }

    /** The most updates a microbatch's weights moved between its forward and its backward in this pass. */
    default long staleness() {
        return 0;
    }

    /** Frees what a failed pass left behind (saved activations, gradients between replicas). */
    default void discardPending() {
        optimizer().discardPending();
    }

    /** Frees the parameters and optimizer state. */
    @Override
    void close();
}
