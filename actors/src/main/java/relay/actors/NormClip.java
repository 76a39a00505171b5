package relay.actors;

import relay.optimizers.Clipping;

/**
 * Clipping by global norm within a step: the norm is known only once every stage has seen its gradients, so a
 * step that clips so runs a norm-only pass first (the stages report their squared norms, nothing is updated)
 * and then the updating pass, whose weight gradients are scaled by the factor that norm calls for. A step
 * that does not clip by norm is its updating pass alone, unscaled.
 */
final class NormClip {
    private final Clipping clipping;
    private double norm = Double.NaN;

    NormClip(Clipping clipping) {
        this.clipping = clipping;
    }

    Pass firstPass() {
        return clipping.byNorm() ? Pass.NORM : Pass.TRAIN;
    }

    /** The norm pass is done: the global norm from the stages' squared norms; returns the updating pass's scale. */
    float measured(double normSquared) {
        norm = Math.sqrt(normSquared);
        return clipping.factor(norm);
    }

    /** The step's global gradient norm, NaN unless measured. */
    double norm() {
        return norm;
    }
}
