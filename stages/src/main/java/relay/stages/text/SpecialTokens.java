package relay.stages.text;

/**
 * The tokens a model's files give a role.
 *
 * @param bos      the beginning-of-sequence id, −1 if none
 * @param bosToken its text, null if none
 * @param eos      every id that ends a sequence (tokenizer_config.json's eos_token, then generation_config.json's
 *                 eos_token_id); the first is the one that ends a document in training; empty if none
 * @param eosToken the first's text, null if none
 * @param pad      the padding id, −1 if none
 */
public record SpecialTokens(int bos, String bosToken, int[] eos, String eosToken, int pad) {
    public SpecialTokens {
        eos = eos.clone();
    }

    @Override
    public int[] eos() {
        return eos.clone();
    }

    /** Whether generating this id ends the sequence. */
    public boolean endsSequence(int id) {
        for (int e : eos) if (e == id) return true;
        return false;
    }
}
