package relay.deploy;

import picocli.CommandLine.Option;
import relay.actors.PipelineSchedule;
import relay.actors.UpdateMode;

/**
 * How a pipeline steps — microbatches per step, schedule, update mode — for every command that runs or plans
 * one, parsed as relay train parses its settings of the same names. A command with other defaults builds
 * its instance with them: picocli takes an instance's values as the defaults it shows.
 */
final class PipelineOptions {
    @Option(names = "--microbatches", description = "microbatches per step (default ${DEFAULT-VALUE})")
    int microbatches;

    @Option(names = "--schedule", description = "gpipe, 1f1b or zb-h1 (default ${DEFAULT-VALUE})")
    String schedule = "1f1b";

    @Option(names = "--mode", description = "the update mode, eager or exact (default ${DEFAULT-VALUE})")
    String mode;

    PipelineOptions(int microbatches, UpdateMode mode) {
        this.microbatches = microbatches;
        this.mode = mode.key();
    }

    /** Checks the microbatches against a batch of {@code batch} sequences (0: the batch is searched, any count ≥ 1 will do). */
    void check(int batch) {
        Inputs.require(microbatches >= 1 && (batch == 0 || batch % microbatches == 0), "--microbatches",
                batch == 0 ? "≥ 1" : "≥ 1 and divide --batch " + batch, microbatches);
        schedule();
        mode();
    }

    PipelineSchedule schedule() {
        return Inputs.parsed("--schedule", () -> PipelineSchedule.parse(schedule));
    }

    UpdateMode mode() {
        return Inputs.parsed("--mode", () -> UpdateMode.parse(mode));
    }
}
