package relay.actors.bench;

import java.util.Arrays;
import relay.stages.layers.TransformerBlock;
import relay.stages.memory.Category;
import relay.stages.model.Embedding;
import relay.stages.model.Initializer;
import relay.stages.model.LmHead;
import relay.stages.model.Model;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.Tensor;
import relay.stages.tensor.cpu.CpuDevice;

/**
 * Measured cost of each pipeline stage — embedding, a block, the head — as the median time of its forward
 * and backward on one microbatch, on a one-thread device like the pipeline's. A FLOP count misjudges the
 * head (large, efficient products plus a softmax over the vocabulary), so placement balances these instead.
 */
public final class StageCosts {
    private StageCosts() {}

    public static double[] measure(ModelConfig cfg, int batch, int seq) {
        int n = batch * seq, reps = 5;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = (i * 7919) % cfg.vocabSize();
        double emb, block, head;
        try (CpuDevice d = new CpuDevice("calibration", 1)) {
            Initializer init = new Initializer(d, 1);
            Embedding e = Embedding.create(cfg, init);
            TransformerBlock b = Model.block(cfg, 0, init);
            LmHead h = LmHead.create(cfg, init, cfg.tiedEmbeddings() ? e.tokenTable() : null);
            double[] te = new double[reps + 1], tb = new double[reps + 1], th = new double[reps + 1];
            for (int r = 0; r <= reps; r++) {
                long t0 = System.nanoTime();
                Tensor x = e.forward(ids, seq);
                e.backward(ids, seq, x, (p, g) -> { });
                long t1 = System.nanoTime();
                TransformerBlock.Forward f = b.forward(x, batch, seq);
                b.backward(f, f.output(), (p, g) -> { }).close();
                long t2 = System.nanoTime();
                LmHead.Result res = h.lossAndBackward(f.output(), ids, 1f, (p, g) -> { });
                res.dx().close();
                long t3 = System.nanoTime();
                f.output().close();
                x.close();
                te[r] = t1 - t0;
                tb[r] = t2 - t1;
                th[r] = t3 - t2;
            }
            emb = median(te);
            block = median(tb);
            head = median(th);
            b.close();
            for (var p : h.parameters(!cfg.tiedEmbeddings())) p.close();
            for (var p : e.parameters()) p.close();
        }
        double[] cost = new double[cfg.layers() + 2];
        cost[0] = emb;
        Arrays.fill(cost, 1, cfg.layers() + 1, block);
        cost[cfg.layers() + 1] = head;
        return cost;
    }

    private static double median(double[] v) {
        double[] s = Arrays.copyOfRange(v, 1, v.length);
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
