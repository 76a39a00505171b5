package relay.stages.text;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.FatalTemplateErrorsException;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import relay.stages.io.ModelFileException;

/**
 * A model's chat template (tokenizer_config.json's {@code chat_template}), rendered by a Jinja engine the way
 * transformers' {@code apply_chat_template} renders it: blocks trimmed and left-stripped, the messages as
 * {@code messages} (each with {@code role} and {@code content}), {@code add_generation_prompt}, the special
 * tokens' strings ({@code bos_token}, {@code eos_token}), and the helpers templates call
 * ({@code raise_exception}, {@code strftime_now}).
 */
public final class ChatTemplate {
    /** One turn of a conversation. */
    public record Message(String role, String content) {}

    private final String template;
    private final String source;
    private final Map<String, Object> tokens;
    private final Jinjava jinja;

    /**
     * @param source  where the template comes from, for errors (a file name)
     * @param tokens  the special tokens' strings by name ({@code bos_token}, {@code eos_token}, …); a missing one renders empty
     */
    public ChatTemplate(String template, String source, Map<String, String> tokens) {
        this.template = template;
        this.source = source;
        this.tokens = new HashMap<>(tokens);
        this.jinja = new Jinjava(JinjavaConfig.newBuilder().withTrimBlocks(true).withLstripBlocks(true).build());
        jinja.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raise", String.class));
        jinja.getGlobalContext().registerFunction(new ELFunctionDefinition("", "strftime_now", ChatTemplate.class, "now", String.class));
    }

    /** The chat template of a model's tokenizer files, with its special tokens; a model without one is refused naming its files. */
    public static ChatTemplate of(Tokenizer tokenizer) {
        Path dir = tokenizer.source().toAbsolutePath().getParent();
        String t = tokenizer.chatTemplate().orElseThrow(() -> new ModelFileException(dir, "the model has no chat template "
                + "(tokenizer_config.json's chat_template, or chat_template.jinja)"));
        Map<String, String> tokens = new HashMap<>();
        if (tokenizer.special().bosToken() != null) tokens.put("bos_token", tokenizer.special().bosToken());
        if (tokenizer.special().eosToken() != null) tokens.put("eos_token", tokenizer.special().eosToken());
        return new ChatTemplate(t, dir.resolve("tokenizer_config.json").toString(), tokens);
    }

    /** What a template's {@code raise_exception(message)} does: the message becomes the refusal. */
    public static String raise(String message) {
        throw new TemplateRefusal(message);
    }

    /** {@code strftime_now(format)} for the common directives (%Y %m %d %B %b %H %M); templates use it for today's date. */
    public static String now(String format) {
        String pattern = format.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd").replace("%B", "MMMM").replace("%b", "MMM")
                .replace("%H", "HH").replace("%M", "mm");
        return ZonedDateTime.now().format(DateTimeFormatter.ofPattern(pattern, java.util.Locale.ENGLISH));
    }

    /** Thrown by a template that refuses a conversation (its {@code raise_exception}). */
    static final class TemplateRefusal extends RuntimeException {
        TemplateRefusal(String message) {
            super(message);
        }
    }

    /** The conversation as the model reads it; with {@code addGenerationPrompt}, followed by the opening of the assistant's turn. */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> ms = new ArrayList<>();
        for (Message m : messages) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("role", m.role());
            o.put("content", m.content());
            ms.add(o);
        }
        Map<String, Object> context = new HashMap<>(tokens);
        context.put("messages", ms);
        context.put("add_generation_prompt", addGenerationPrompt);
        // As apply_chat_template passes them when a conversation has none: templates test "tools is not none".
        context.put("tools", null);
        context.put("documents", null);
        RenderResult r;
        try {
            r = jinja.renderForResult(template, context);
        } catch (TemplateRefusal e) {
            throw new IllegalArgumentException(source + ": the chat template refuses the conversation: " + e.getMessage(), e);
        } catch (FatalTemplateErrorsException e) {
            throw new IllegalArgumentException(source + ": the chat template cannot be rendered: " + e.getMessage(), e);
        }
        for (TemplateError e : r.getErrors()) {
            Throwable cause = e.getException();
            while (cause != null && !(cause instanceof TemplateRefusal)) cause = cause.getCause();
            if (cause != null) throw new IllegalArgumentException(source + ": the chat template refuses the conversation: " + cause.getMessage());
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new IllegalArgumentException(source + ": the chat template cannot be rendered: " + e.getMessage());
            }
        }
        return r.getOutput();
    }
}
