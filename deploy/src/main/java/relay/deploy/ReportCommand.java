package relay.deploy;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import relay.deploy.train.Report;

@Command(name = "report", mixinStandardHelpOptions = true,
        description = "Rebuilds RUN/report.html from the run's files (metrics, history, trace), finished or going on.")
final class ReportCommand implements Callable<Integer> {
    @Parameters(paramLabel = "RUN", description = "a run directory")
    Path run;

    @Override
    public Integer call() throws Exception {
        System.out.println("report: " + Report.rebuild(run));
        return 0;
    }
}
