package relay.stages.model;

/** The two decoder-only families Relay knows, by their Hugging Face model_type. */
public enum Family {
    GPT2("gpt2"),
    LLAMA("llama");

    private final String modelType;

    Family(String modelType) {
        this.modelType = modelType;
    }

    public String modelType() {
        return modelType;
    }
}
