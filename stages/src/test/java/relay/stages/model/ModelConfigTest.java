package relay.stages.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.StringReader;
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
}
