package relay.stages.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.StringReader;
import java.util.List;
import org.junit.jupiter.api.Test;
import relay.stages.tensor.cpu.CpuDevice;

class ModelConfigTest {

    /**
     * Known sizes: GPT-2 small has 124,439,808 parameters, TinyLlama-1.1B (the llama-1b shape) 1,100,048,384,
     * LLaMA 7B / 13B / 65B 6,738,415,616 / 13,015,864,320 / 65,285,660,672 and Llama 2 70B 68,976,648,192.
     */
    @Test
    void presetsHaveTheirPublishedParameterCounts() {
        assertEquals(124_439_808L, ModelConfig.named("gpt2-124m").parameters());
        assertEquals(1_100_048_384L, ModelConfig.named("llama-1b").parameters());
        assertEquals(6_738_415_616L, ModelConfig.named("llama-7b").parameters());
        assertEquals(13_015_864_320L, ModelConfig.named("llama-13b").parameters());
        assertEquals(65_285_660_672L, ModelConfig.named("llama-65b").parameters());
        assertEquals(68_976_648_192L, ModelConfig.named("llama-70b").parameters());
    }

    @Test
    void countMatchesTheAllocatedModel() {
        for (String name : new String[] {"gpt2-tiny", "llama-tiny"}) {
            ModelConfig cfg = ModelConfig.named(name);
            try (CpuDevice d = new CpuDevice("cpu-cfg", 1); Model m = Model.initialize(cfg, d, 1)) {
                long n = m.parameters().stream().mapToLong(p -> p.size()).sum();
                assertEquals(cfg.parameters(), n, name);
                assertEquals(m.parameters().size(), m.parameterNames().size(), "names are unique");
            }
        }
    }

    @Test
    void sameSeedSameWeightsDifferentSeedOtherWeights() {
        ModelConfig cfg = ModelConfig.named("llama-tiny");
        try (CpuDevice d = new CpuDevice("cpu-cfg", 1); Model a = Model.initialize(cfg, d, 5);
             Model b = Model.initialize(cfg, d, 5); Model c = Model.initialize(cfg, d, 6)) {
            float[] wa = a.blocks().get(1).parameters().get(1).value().toArray();
            assertEquals(java.util.Arrays.hashCode(wa), java.util.Arrays.hashCode(b.blocks().get(1).parameters().get(1).value().toArray()));
            assertTrue(java.util.Arrays.hashCode(wa) != java.util.Arrays.hashCode(c.blocks().get(1).parameters().get(1).value().toArray()));
        }
    }

    @Test
    void hfLlamaFieldsAreRead() {
        ModelConfig c = ModelConfig.parse(new StringReader("""
                {"model_type":"llama","vocab_size":100,"hidden_size":64,"intermediate_size":160,"num_hidden_layers":3,
                 "num_attention_heads":8,"num_key_value_heads":2,"max_position_embeddings":128,"rms_norm_eps":1e-6,
                 "rope_theta":500000.0,"tie_word_embeddings":true}"""), "test.json");
        assertEquals(Family.LLAMA, c.family());
        assertEquals(2, c.kvHeads());
        assertEquals(8, c.headDim());
        assertEquals(500000.0, c.ropeTheta());
        assertTrue(c.tiedEmbeddings());
    }

    @Test
    void errorsNameTheSourceAndTheField() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.parse(
                new StringReader("{\"model_type\":\"gpt2\",\"n_embd\":\"wide\"}"), "cfg.json"));
        assertTrue(e.getMessage().startsWith("cfg.json: field 'n_embd' must be a whole number"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.parse(new StringReader("{oops"), "bad.json"));
        assertTrue(e.getMessage().startsWith("bad.json: malformed JSON"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.parse(
                new StringReader("{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":12,\"intermediate_size\":8,"
                        + "\"num_hidden_layers\":1,\"num_attention_heads\":3,\"num_key_value_heads\":2,\"max_position_embeddings\":8}"), "gqa.json"));
        assertTrue(e.getMessage().contains("gqa.json: num_attention_heads 3 is not divisible by num_key_value_heads 2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.parse(new StringReader("{\"model_type\":\"bert\"}"), "b.json"));
        assertTrue(e.getMessage().contains("model_type 'bert' is not supported"), e.getMessage());
    }

    /** Each field is checked by name: sizes positive and whole, heads dividing the width, epsilons finite and positive. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
            "\"num_attention_heads\": 0 | field 'num_attention_heads' must be a positive whole number, not 0",
            "\"num_hidden_layers\": 4.5 | field 'num_hidden_layers' must be a whole number, not 4.5",
            "\"vocab_size\": -3 | field 'vocab_size' must be a positive whole number, not -3",
            "\"intermediate_size\": \"wide\" | field 'intermediate_size' must be a whole number",
            "\"hidden_size\": 100 | hidden_size 100 is not divisible by num_attention_heads 8",
            "\"num_key_value_heads\": 3 | num_attention_heads 8 is not divisible by num_key_value_heads 3",
            "\"rms_norm_eps\": 0 | field 'rms_norm_eps' must be a finite number > 0, not 0",
            "\"rms_norm_eps\": NaN | field 'rms_norm_eps' must be a finite number > 0",
            "\"rope_theta\": -1 | field 'rope_theta' must be a finite number > 0, not -1",
            "\"head_dim\": 7 | head_dim 7 (hidden_size / num_attention_heads unless given) must be even",
            "\"tie_word_embeddings\": 1 | field 'tie_word_embeddings' must be true or false, not 1"})
    void everyFieldIsCheckedByName(String field, String message) {
        String base = "\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":160,"
                + "\"num_hidden_layers\":3,\"num_attention_heads\":8,\"num_key_value_heads\":2,\"max_position_embeddings\":128";
        String key = field.substring(0, field.indexOf(':'));
        String json = "{" + base.replaceAll(java.util.regex.Pattern.quote(key) + ":[^,]*,?", "") + "," + field + "}";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ModelConfig.parse(new StringReader(json.replace(",,", ",").replace("{,", "{")), "config.json"));
        assertTrue(e.getMessage().startsWith("config.json: " + message), e.getMessage());
    }

    // ---- real config.json files (as published on the Hugging Face hub) ----

    static final String LLAMA31_8B = """
            {"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":128000,
             "eos_token_id":[128001,128008,128009],"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,
             "intermediate_size":14336,"max_position_embeddings":131072,"mlp_bias":false,"model_type":"llama",
             "num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"pretraining_tp":1,"rms_norm_eps":1e-05,
             "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,
             "rope_type":"llama3"},"rope_theta":500000.0,"tie_word_embeddings":false,"torch_dtype":"bfloat16",
             "transformers_version":"4.43.0.dev0","use_cache":true,"vocab_size":128256}""";

    static final String MISTRAL_7B_V01 = """
            {"architectures":["MistralForCausalLM"],"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu","hidden_size":4096,
             "initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":32768,"model_type":"mistral",
             "num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_theta":10000.0,
             "sliding_window":4096,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.34.0.dev0",
             "use_cache":true,"vocab_size":32000}""";

    static final String QWEN25_05B = """
            {"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,"eos_token_id":151643,
             "hidden_act":"silu","hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,"max_position_embeddings":32768,
             "max_window_layers":24,"model_type":"qwen2","num_attention_heads":14,"num_hidden_layers":24,"num_key_value_heads":2,
             "rms_norm_eps":1e-06,"rope_theta":1000000.0,"sliding_window":32768,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
             "transformers_version":"4.40.1","use_cache":true,"use_sliding_window":false,"vocab_size":151936}""";

    static final String GPT2_HF = """
            {"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],"attn_pdrop":0.1,"bos_token_id":50256,
             "embd_pdrop":0.1,"eos_token_id":50256,"initializer_range":0.02,"layer_norm_epsilon":1e-05,"model_type":"gpt2",
             "n_ctx":1024,"n_embd":768,"n_head":12,"n_layer":12,"n_positions":1024,"resid_pdrop":0.1,"summary_activation":null,
             "summary_first_dropout":0.1,"summary_proj_to_labels":true,"summary_type":"cls_index","summary_use_proj":true,
             "task_specific_params":{"text-generation":{"do_sample":true,"max_length":50}},"vocab_size":50257}""";

    static ModelConfig parse(String json) {
        return ModelConfig.parse(new StringReader(json), "config.json");
    }

    /** Qwen2.5-0.5B has 494,032,768 parameters: its q, k and v biases are counted. */
    @Test
    void publishedConfigsAreReadWithTheirOptions() {
        ModelConfig llama = parse(LLAMA31_8B);
        assertEquals(ModelConfig.Rope.llama3(8, 1, 4, 8192), llama.options().rope());
        assertEquals(ModelConfig.RopeSpelling.ROPE_SCALING_ROPE_TYPE, llama.options().ropeSpelling());
        assertEquals(500000.0, llama.ropeTheta());
        ModelConfig mistral = parse(MISTRAL_7B_V01);
        assertEquals("mistral", mistral.modelType());
        assertEquals(4096, mistral.window(0));
        assertEquals(4096, mistral.window(31));
        ModelConfig qwen = parse(QWEN25_05B);
        assertTrue(qwen.qkvBias());
        assertEquals(0, qwen.window(23), "use_sliding_window is false");
        assertEquals(494_032_768L, qwen.parameters());
        assertEquals(124_439_808L, parse(GPT2_HF).parameters());
    }

    /** transformers 4's rope_scaling, with "type" or "rope_type", and transformers 5's rope_parameters are one config. */
    @Test
    void everySpellingOfTheRotarySettingsReadsTheSame() {
        String base = "{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":160,\"num_hidden_layers\":3,"
                + "\"num_attention_heads\":8,\"max_position_embeddings\":128,";
        String yarn = "\"factor\":4.0,\"original_max_position_embeddings\":32,\"beta_fast\":16,\"truncate\":false";
        ModelConfig a = parse(base + "\"rope_theta\":50000.0,\"rope_scaling\":{\"type\":\"yarn\"," + yarn + "}}");
        ModelConfig b = parse(base + "\"rope_theta\":50000.0,\"rope_scaling\":{\"rope_type\":\"yarn\"," + yarn + "}}");
        ModelConfig c = parse(base + "\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":50000.0," + yarn + "}}");
        ModelConfig.Rope want = new ModelConfig.Rope("yarn", 4, 0, 0, 32, 0, 16, 0, 0, 0, false);
        for (ModelConfig x : List.of(a, b, c)) {
            assertEquals(want, x.options().rope());
            assertEquals(50000.0, x.ropeTheta());
            assertEquals(a, withSpelling(x, ModelConfig.RopeSpelling.ROPE_SCALING_TYPE));
        }
        assertEquals(List.of(ModelConfig.RopeSpelling.ROPE_SCALING_TYPE, ModelConfig.RopeSpelling.ROPE_SCALING_ROPE_TYPE,
                ModelConfig.RopeSpelling.ROPE_PARAMETERS), List.of(a, b, c).stream().map(x -> x.options().ropeSpelling()).toList());
        // transformers 5's plain config: rope_parameters with the default type only carries rope_theta.
        ModelConfig plain = parse(base + "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500000.0}}");
        assertEquals(ModelConfig.Rope.NONE, plain.options().rope());
        assertEquals(500000.0, plain.ropeTheta());
    }

    static ModelConfig withSpelling(ModelConfig c, ModelConfig.RopeSpelling s) {
        return new ModelConfig(c.family(), c.vocabSize(), c.hidden(), c.layers(), c.heads(), c.kvHeads(), c.headDim(), c.intermediate(),
                c.maxPositions(), c.normEps(), c.ropeTheta(), c.tiedEmbeddings(), c.options().withRope(c.options().rope(), s));
    }

    /** Written by Relay and read back, a config is the same, rotary settings spelled as they were read. */
    @Test
    void savedConfigsReadBackTheSame(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        String small = "\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":160,\"num_hidden_layers\":3,"
                + "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"max_position_embeddings\":128,";
        List<String> configs = List.of(LLAMA31_8B, MISTRAL_7B_V01, QWEN25_05B, GPT2_HF,
                "{\"model_type\":\"llama\"," + small + "\"attention_bias\":true,\"mlp_bias\":true,"
                        + "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}",
                "{\"model_type\":\"llama\"," + small + "\"rope_parameters\":{\"rope_type\":\"dynamic\",\"factor\":3.0,\"rope_theta\":1e6}}",
                "{\"model_type\":\"qwen2\"," + small + "\"use_sliding_window\":true,\"sliding_window\":16,\"max_window_layers\":1,"
                        + "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":32,"
                        + "\"attention_factor\":1.2,\"beta_fast\":16,\"beta_slow\":2,\"mscale\":0.7,\"mscale_all_dim\":1.0,\"truncate\":false}}",
                "{\"model_type\":\"mistral\"," + small + "\"sliding_window\":null}");
        for (String json : configs) {
            ModelConfig c = parse(json);
            relay.stages.io.HfModelDirectory.writeConfig(c, dir);
            assertEquals(c, ModelConfig.read(dir.resolve("config.json")), json);
        }
        // The rotary block is written back key for key.
        relay.stages.io.HfModelDirectory.writeConfig(parse(LLAMA31_8B), dir);
        com.google.gson.JsonObject written = com.google.gson.JsonParser.parseString(
                java.nio.file.Files.readString(dir.resolve("config.json"))).getAsJsonObject();
        assertEquals(com.google.gson.JsonParser.parseString(LLAMA31_8B).getAsJsonObject().get("rope_scaling"), written.get("rope_scaling"));
    }

    /** What Relay does not implement, or has never heard of, is refused in one line naming the file and the key. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
            "llama | \"partial_rotary_factor\": 0.5 | 'partial_rotary_factor' 0.5 is not supported",
            "llama | \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 2} | 'rope_scaling.rope_type' 'longrope' is not supported",
            "llama | \"rope_scaling\": {\"type\": \"su\"} | 'rope_scaling.type' 'su' is not supported",
            "llama | \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2, \"finetuned\": true} | 'rope_scaling.finetuned' is not a config key Relay knows",
            "llama | \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192} | missing field 'rope_scaling.low_freq_factor'",
            "llama | \"rope_parameters\": {\"rope_type\": \"default\", \"partial_rotary_factor\": 0.25} | 'rope_parameters.partial_rotary_factor' 0.25 is not supported",
            "llama | \"quantization_config\": {\"bits\": 4} | 'quantization_config' is not a config key Relay knows",
            "llama | \"hidden_act\": \"gelu\" | 'hidden_act' 'gelu' is not supported",
            "llama | \"attention_dropout\": 0.1 | 'attention_dropout' 0.1 is not supported",
            "llama | \"sliding_window\": 4096 | 'sliding_window' is not a config key Relay knows",
            "mistral | \"attention_bias\": true | 'attention_bias' is not a config key Relay knows",
            "qwen2 | \"use_sliding_window\": true, \"sliding_window\": 8, \"max_window_layers\": 1, \"layer_types\": [\"full_attention\", \"full_attention\", \"full_attention\"] | 'layer_types' [\"full_attention\",\"full_attention\",\"full_attention\"] is not supported",
            "gpt2 | \"activation_function\": \"relu\" | 'activation_function' 'relu' is not supported",
            "gpt2 | \"scale_attn_by_inverse_layer_idx\": true | 'scale_attn_by_inverse_layer_idx' true is not supported",
            "gpt2 | \"add_cross_attention\": true | 'add_cross_attention' true is not supported",
            "gpt2 | \"scale_attn_weights\": false | 'scale_attn_weights' false is not supported"})
    void unimplementedKeysAreRefusedByName(String type, String field, String message) {
        String base = type.equals("gpt2")
                ? "\"model_type\":\"gpt2\",\"vocab_size\":100,\"n_embd\":64,\"n_layer\":3,\"n_head\":8,\"n_positions\":128"
                : "\"model_type\":\"" + type + "\",\"vocab_size\":100,\"hidden_size\":64,\"intermediate_size\":160,"
                        + "\"num_hidden_layers\":3,\"num_attention_heads\":8,\"num_key_value_heads\":2,\"max_position_embeddings\":128";
        parse("{" + base + "}");  // the base alone is fine
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> parse("{" + base + "," + field + "}"));
        assertTrue(e.getMessage().startsWith("config.json: " + message), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }
}
