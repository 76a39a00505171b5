package relay.stages.io;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import relay.stages.model.Family;
import relay.stages.model.ModelConfig;
import relay.stages.tensor.DType;

/**
 * LoRA adapters as PEFT writes them: {@code adapter_config.json} and {@code adapter_model.safetensors} holding
 * {@code base_model.model.<module>.lora_A.weight} [rank, in] and {@code lora_B.weight} [out, rank], the update
 * being (alpha / rank)·B·A — Relay's adapters are the same matrices with the same scale, so they are written as
 * they are. GPT-2's Conv1D modules are marked {@code fan_in_fan_out}, as PEFT marks them.
 *
 * @param values the adapters by Relay's names ("…q_proj.lora_A.weight"), flat
 */
public record PeftAdapter(int rank, float alpha, String baseModel, Map<String, float[]> values) {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";

    public PeftAdapter {
        if (rank < 1) throw new IllegalArgumentException("LoRA rank " + rank);
        values = new TreeMap<>(values);
    }

    /** Writes both files into dir; every adapter must be a whole [rank, ·] or [·, rank] matrix. */
    public void write(ModelConfig model, Path dir, DType dtype) throws IOException {
        if (values.isEmpty()) throw new IllegalArgumentException("the checkpoint holds no LoRA adapters");
        List<SafeTensors.Tensor32> tensors = new ArrayList<>();
        TreeSet<String> modules = new TreeSet<>();
        for (Map.Entry<String, float[]> e : values.entrySet()) {
            String name = e.getKey();
            boolean a = name.endsWith(".lora_A.weight");
            int n = e.getValue().length;
            if (n % rank != 0) throw new IllegalArgumentException("adapter " + name + " has " + n + " values, not a multiple of rank " + rank);
            int[] shape = a ? new int[] {rank, n / rank} : new int[] {n / rank, rank};
            tensors.add(new SafeTensors.Tensor32("base_model.model." + name, shape, e.getValue()));
            String module = name.substring(0, name.lastIndexOf(a ? ".lora_A.weight" : ".lora_B.weight"));
            modules.add(module.substring(module.lastIndexOf('.') + 1));
        }
        SafeTensors.write(dir.resolve(WEIGHTS), tensors, Map.of("format", "pt"), dtype);
        JsonObject c = new JsonObject();
        c.addProperty("peft_type", "LORA");
        c.addProperty("task_type", "CAUSAL_LM");
        if (baseModel != null) c.addProperty("base_model_name_or_path", baseModel);
        else c.add("base_model_name_or_path", JsonNull.INSTANCE);
        c.addProperty("r", rank);
        c.addProperty("lora_alpha", alpha);
        c.addProperty("lora_dropout", 0.0);
        c.addProperty("bias", "none");
        c.addProperty("fan_in_fan_out", model.family() == Family.GPT2);
        c.addProperty("inference_mode", true);
        JsonArray targets = new JsonArray();
        modules.forEach(targets::add);
        c.add("target_modules", targets);
        FileWrites.writeString(dir.resolve(CONFIG), new GsonBuilder().setPrettyPrinting().create().toJson(c) + "\n");
    }
}
