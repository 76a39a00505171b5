package relay.stages.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Chat templates as the models ship them, rendered to the strings transformers renders (written out by hand below). */
class ChatTemplateTest {
    /** Meta-Llama-3-8B-Instruct's template (its JSON string's \n escapes are newlines here). */
    static final String LLAMA3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
            + "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
            + "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    /** Mistral-7B-Instruct-v0.1's template: alternation enforced with raise_exception. */
    static final String MISTRAL = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            + "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
            + "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

    /**
     * A ChatML template (Qwen2 style) written with tags on their own lines: trim_blocks drops the newline after a block
     * tag, lstrip_blocks the indent before one, but an expression keeps both (as jinja2 renders it).
     */
    static final String CHATML = "{% for message in messages %}\n"
            + "  {{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n"
            + "{% endfor %}\n"
            + "{% if add_generation_prompt %}\n"
            + "  {{ '<|im_start|>assistant\\n' }}\n"
            + "{% endif %}\n";

    static final List<ChatTemplate.Message> CHAT = List.of(new ChatTemplate.Message("user", " Hi there "),
            new ChatTemplate.Message("assistant", "Hello!"));

    @Test
    void llama3() {
        ChatTemplate t = new ChatTemplate(LLAMA3, "tokenizer_config.json", Map.of("bos_token", "<|begin_of_text|>", "eos_token", "<|eot_id|>"));
        assertEquals("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>", t.render(CHAT, false));
        assertEquals("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", t.render(CHAT.subList(0, 1), true));
    }

    @Test
    void mistralAndItsRefusal() {
        ChatTemplate t = new ChatTemplate(MISTRAL, "tokenizer_config.json", Map.of("bos_token", "<s>", "eos_token", "</s>"));
        assertEquals("<s>[INST]  Hi there  [/INST]Hello!</s>", t.render(CHAT, false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> t.render(List.of(new ChatTemplate.Message("assistant", "x")), false));
        assertTrue(e.getMessage().startsWith("tokenizer_config.json: the chat template refuses the conversation: Conversation roles must alternate"),
                e.getMessage());
    }

    @Test
    void chatmlWithBlocksOnTheirOwnLines() {
        ChatTemplate t = new ChatTemplate(CHATML, "tokenizer_config.json", Map.of());
        assertEquals("  <|im_start|>user\n Hi there <|im_end|>\n\n  <|im_start|>assistant\nHello!<|im_end|>\n\n", t.render(CHAT, false));
        assertEquals("  <|im_start|>user\n Hi there <|im_end|>\n\n  <|im_start|>assistant\n\n", t.render(CHAT.subList(0, 1), true));
    }

    /** Templates of tool-using models (Llama 3.1, Qwen2.5) test tools and documents, which apply_chat_template passes as None. */
    @Test
    void toolsAndDocumentsAreNone() {
        ChatTemplate t = new ChatTemplate("{% if tools is not none %}TOOLS{% endif %}{% if documents is none %}[no documents]{% endif %}"
                + "{% for m in messages %}{{ m['content'] }}{% endfor %}", "tokenizer_config.json", Map.of());
        assertEquals("[no documents] Hi there Hello!", t.render(CHAT, false));
    }

    @Test
    void aBrokenTemplateIsOneLineNamingItsFile() {
        ChatTemplate t = new ChatTemplate("{% for m in messages %}{{ m.content }", "dir/tokenizer_config.json", Map.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.render(CHAT, false));
        assertTrue(e.getMessage().startsWith("dir/tokenizer_config.json: the chat template cannot be rendered"), e.getMessage());
    }

    /**
     * Llama 3.2's templates take today's date where strftime_now is defined (as apply_chat_template defines it) and a
     * date of their own otherwise. Here it is not defined to them: a run's tokens must not depend on the day it is
     * started or resumed (a resumed run that encoded its data again would pack other sequences).
     */
    @Test
    void aTemplateAskingForTodaysDateRendersItsOwnFixedOne() {
        ChatTemplate t = new ChatTemplate("{% if strftime_now is defined %}{{ strftime_now(\"%d %b %Y\") }}{% else %}26 Jul 2024{% endif %}",
                "tokenizer_config.json", Map.of());
        assertEquals("26 Jul 2024", t.render(List.of(new ChatTemplate.Message("user", "hi")), false));
    }
}
