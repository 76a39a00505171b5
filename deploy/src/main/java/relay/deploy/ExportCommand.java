package relay.deploy;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import relay.deploy.train.Checkpoint;
import relay.stages.io.ModelExport;
import relay.stages.io.PeftAdapter;
import relay.stages.tensor.DType;
import relay.stages.tensor.cpu.CpuDevice;

@Command(name = "export", mixinStandardHelpOptions = true,
        description = "Writes a clean Hugging Face model directory from a run (its newest checkpoint) or a checkpoint: weights in "
                + "f32 or bf16 (the run's own unless --dtype says), config.json, the tokenizer's files as the source model had them, no optimizer or trainer state.")
final class ExportCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "RUN|CHECKPOINT", description = "a run directory (its newest intact checkpoint), a checkpoint or a model directory")
    Path source;

    @Option(names = "--to", required = true, paramLabel = "DIR", description = "the directory to write (new, or empty)")
    Path to;

    @Option(names = "--dtype", paramLabel = "f32|bf16", description = "precision of the written weights (default: the source's own, "
            + "as its config.json names it: a bf16 run exports bf16, an f32 run f32)")
    String dtype;

    @Option(names = "--max-shard-size", paramLabel = "BYTES", description = "largest weight file before the weights are sharded with an index "
            + "(default ${DEFAULT-VALUE}, transformers' 5GB)")
    long maxShardSize = ModelExport.SHARD_BYTES;

    @Option(names = "--adapter", description = "also write a LoRA run's adapters as a PEFT adapter (adapter_config.json, adapter_model.safetensors) "
            + "beside the merged weights")
    boolean adapter;

    @Override
    public Integer call() throws IOException {
        DType given = dtype == null ? null : Inputs.parsed("--dtype", () -> DType.parse(dtype));
        Inputs.require(maxShardSize >= 1, "--max-shard-size", "≥ 1", maxShardSize);
        Inputs.writableDirectory(to, "--to");
        Path model = Checkpoint.modelDirectory(source);
        DType d = given != null ? given : ModelExport.defaultDtype(model);
        PeftAdapter lora = adapter ? Checkpoint.loraAdapter(model) : null;
        ModelExport.Result r;
        try (CpuDevice device = new CpuDevice("export", 1)) {
            r = ModelExport.export(model, to, d, maxShardSize, lora, device);
        }
        System.out.printf(Locale.ROOT, "exported %s to %s: %s, %.1f MiB of %s weights%n", model, r.dir(), String.join(", ", r.files()),
                r.tensorBytes() / 1048576.0, d.name().toLowerCase(Locale.ROOT));
        return 0;
    }
}
