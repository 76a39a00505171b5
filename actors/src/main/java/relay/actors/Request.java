package relay.actors;

import java.time.Duration;
import java.util.Set;

/**
 * What the coordinator is busy with: a request, or a phase of one (a start builds the stages, then connects
 * them; a step has the blocks take LISA's and RSO's draws, then runs its passes). It tells the stages what to
 * do, takes their events, and replies once: with the answer, or with why there is none.
 */
abstract class Request {
    /** The stages it runs on ({@link PipelineStages#NONE} while they are being built). */
    final PipelineStages stages;
    /** The coordinator's own load for the request, carried from phase to phase. */
    final CoordinatorLoad load;

    Request(PipelineStages stages, CoordinatorLoad load) {
        this.stages = stages;
        this.load = load;
    }

    /** Sends what starts it; returns what is now in progress: this, or the phase it went on to at once. */
    abstract Request begin();

    /** Takes a stage's event; returns this while it goes on, the next phase (begun) once this one is done, or null once it replied. */
    abstract Request event(StageEvent e);

    /** What it is doing, for a refusal or a timeout. */
    abstract String what();

    /** The stages whose reports it still waits for. */
    abstract Set<Integer> outstanding();

    /** Replies that it failed, or was refused: why, and what kind of failure. */
    abstract void fail(String error, StageEvent.Failure kind);

    /** How long it may take: building and gathering take the long request timeout; passes have the step timeout. */
    Duration deadline(PipelineConfig config) {
        return config.requestTimeout();
    }

    /** Whether it needs an actor of this node besides the stages (a host it has build stages, a holder of a snapshot): a node downed then fails it. */
    boolean reliesOn(org.apache.pekko.actor.Address node) {
        return false;
    }

    /** Whether the pipeline stays usable after bad input failed it: yes, unless the pipeline was being started. */
    boolean survivesInputFailure() {
        return true;
    }
}
