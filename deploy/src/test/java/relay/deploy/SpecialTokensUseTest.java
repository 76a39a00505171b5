package relay.deploy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.text.Tokenizer;

/** eval joins documents as training does; generate begins a prompt the model's way and stops at any end-of-sequence id. */
class SpecialTokensUseTest {
    @TempDir
    Path dir;

    /**
     * A LlamaTokenizer whose template is rebuilt from add_eos_token: &lt;s&gt; $A &lt;/s&gt;. Vocabulary &lt;s&gt; 0, &lt;/s&gt; 1,
     * a 2, b 3, no merges, no normalizer or pre-tokenizer; generation_config.json adds b (3) as a second end.
     */
    private Tokenizer tokenizer() throws Exception {
        String added = "{\"id\": %d, \"content\": \"%s\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                + "\"normalized\": false, \"special\": true}";
        Files.writeString(dir.resolve("tokenizer.json"), "{\"version\": \"1.0\", \"added_tokens\": [" + added.formatted(0, "<s>") + ", "
                + added.formatted(1, "</s>") + "], \"normalizer\": null, \"pre_tokenizer\": null, \"post_processor\": null, "
                + "\"decoder\": {\"type\": \"Fuse\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"</s>\": 1, \"a\": 2, \"b\": 3}, "
                + "\"merges\": []}}");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"tokenizer_class\": \"LlamaTokenizer\", \"add_eos_token\": true, "
                + "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
        Files.writeString(dir.resolve("generation_config.json"), "{\"eos_token_id\": [1, 3]}");
        return Tokenizer.ofModel(dir);
    }

    @Test
    void evalJoinsDocumentsAsTrainingDoes() throws Exception {
        // "ab" → <s> a b </s> = 0 2 3 1 (the template ends it: no second </s>), "a" → 0 2 1; the first 6 tokens.
        assertArrayEquals(new int[] {0, 2, 3, 1, 0, 2}, EvalCommand.tokens(tokenizer(), List.of("ab", "a", "b"), 6));
    }

    @Test
    void generateBeginsWithTheModelsBosAndStopsAtAnyEos() throws Exception {
        Tokenizer t = tokenizer();
        // The prompt "a" as the model saw texts begin, <s> a, without the </s> the template closes it with.
        assertArrayEquals(new int[] {0, 2}, GenerateCommand.promptIds(t, "a"));
        // Both tokenizer_config.json's </s> and generation_config.json's other id end generation; a does not.
        assertTrue(t.special().endsSequence(1) && t.special().endsSequence(3));
        assertFalse(t.special().endsSequence(2));
    }
}
