package relay.actors;

import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import relay.optimizers.LisaPolicy;
import relay.optimizers.LowRankTerms;

/**
 * LISA's draw and RSO's redraw, which the blocks take before the step that makes one: LISA's says which blocks
 * train from that step on (the first step applies the current draw whether or not it redraws), RSO's which
 * subspaces the blocks' weights move in. Every replica's blocks take the same draw. The step starts once every
 * block has taken it.
 */
final class BlockDraws {
    /** Null without LISA. */
    private final LisaPolicy lisa;
    private final boolean redrawsSubspaces;
    private final int rsoPeriod;
    private final int blocks;
    private final Placement placement;
    private boolean lisaApplied;
    /** The step whose seed drew the blocks' RSO subspaces (they are built with step 0's). */
    private long drawnAt;

    BlockDraws(PipelineConfig config, Placement placement) {
        this.blocks = placement.stages() - 2;
        this.placement = placement;
        this.lisa = config.lisa() ? LisaPolicy.of(blocks, config.settings()) : null;
        this.redrawsSubspaces = config.method().redrawsSubspaces();
        this.rsoPeriod = config.settings().lowRank().rsoPeriod();
    }

    /** Sends the blocks what {@code step} draws, if it draws anything; returns the stages that are to take it. */
    Set<Integer> send(long step, PipelineStages stages, CoordinatorLoad load) {
        Set<Integer> told = new TreeSet<>();
        if (lisa != null && (!lisaApplied || lisa.redrawsAt((int) step))) {
            lisaApplied = true;
            int[] active = lisa.activeBlocks((int) step);
            for (int b = 0; b < blocks; b++) tell(stages, b, new StageCommand.SetTrainable(step, Arrays.binarySearch(active, b) >= 0), told, load);
        }
        long draw = LowRankTerms.drawFor(step, rsoPeriod);
        if (redrawsSubspaces && draw != drawnAt) {
            drawnAt = draw;
            for (int b = 0; b < blocks; b++) tell(stages, b, new StageCommand.Redraw(step, draw, step == draw), told, load);
        }
        return told;
    }

    private void tell(PipelineStages stages, int block, StageCommand c, Set<Integer> told, CoordinatorLoad load) {
        for (int r = 0; r < placement.replicas(); r++) {
            int actor = placement.actor(r, block + 1);
            stages.get(actor).tell(c);
            told.add(actor);
            load.sent(1);
        }
    }

    /** Whether a block's event says it took {@code step}'s draw. */
    static boolean taken(StageEvent e, long step) {
        return e instanceof StageEvent.TrainableSet t ? t.step() == step : e instanceof StageEvent.Redrawn r && r.step() == step;
    }

    /** What a step waits for while the blocks take a draw. */
    String what() {
        return lisa != null ? "LISA's draw" : "RSO's redraw";
    }
}
