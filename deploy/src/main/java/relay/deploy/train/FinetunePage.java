package relay.deploy.train;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import relay.optimizers.bench.FinetuneBench;
import relay.stages.io.FileWrites;

/** The fine-tuning comparison as one self-contained page: its facts, held-out and training loss curves of every method. */
public final class FinetunePage {
    private FinetunePage() {}

    public static void write(Path file, String title, Map<String, String> facts, List<FinetuneBench.Run> runs) throws IOException {
        StringBuilder h = Report.pageStart(title, "");
        Report.factsAndGrid(h, facts);
        List<Chart.Series> heldOut = new ArrayList<>(), train = new ArrayList<>();
        for (FinetuneBench.Run r : runs) {
            heldOut.add(new Chart.Series(r.optimizer(), r.validation(), Chart.Style.LINE));
            List<double[]> xy = new ArrayList<>();
            for (int i = 0; i < r.losses().length; i++) xy.add(new double[] {i + 1, r.losses()[i]});
            train.add(Report.smoothed(r.optimizer(), new Chart.Series(r.optimizer(), xy, Chart.Style.LINE)));
        }
        Report.card(h, "held-out", "Held-out New Testament loss", Chart.draw(heldOut, "step", "loss", List.of(), ""));
        Report.card(h, "train", "Training loss (smoothed)", Chart.draw(train, "step", "loss", List.of(), ""));
        h.append("</div></body></html>\n");
        FileWrites.writeString(file, h);
    }
}
