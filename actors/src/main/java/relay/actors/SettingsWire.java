package relay.actors;

import relay.optimizers.Clipping;
import relay.optimizers.OptimizerSettings.Adam;
import relay.optimizers.OptimizerSettings.Lisa;
import relay.optimizers.OptimizerSettings.LowRank;
import relay.optimizers.OptimizerSettings.LrSchedule;
import relay.transport.proto.OptimizerSettings;

/**
 * The Protobuf form of the optimizer's settings, one pair of conversions per group, so that a value can only land
 * in its own group and each group's fields are named in one place. Here {@code OptimizerSettings} is the message;
 * the records are {@code relay.optimizers}'.
 */
final class SettingsWire {
    private SettingsWire() {}

    static OptimizerSettings settings(relay.optimizers.OptimizerSettings s) {
        return OptimizerSettings.newBuilder().setLr(s.lr()).setWeightDecay(s.weightDecay()).setAdam(adam(s.adam()))
                .setClipping(clipping(s.clipping())).setLrSchedule(lrSchedule(s.lrSchedule())).setLisa(lisa(s.lisa()))
                .setLowRank(lowRank(s.lowRank())).setSeed(s.seed()).build();
    }

    static relay.optimizers.OptimizerSettings settings(OptimizerSettings s) {
        return new relay.optimizers.OptimizerSettings(s.getLr(), s.getWeightDecay(), adam(s.getAdam()), clipping(s.getClipping()),
                lrSchedule(s.getLrSchedule()), lisa(s.getLisa()), lowRank(s.getLowRank()), s.getSeed());
    }

    static OptimizerSettings.Adam adam(Adam a) {
        return OptimizerSettings.Adam.newBuilder().setBeta1(a.beta1()).setBeta2(a.beta2()).setEps(a.eps()).build();
    }

    static Adam adam(OptimizerSettings.Adam a) {
        return new Adam(a.getBeta1(), a.getBeta2(), a.getEps());
    }

    static OptimizerSettings.Clipping clipping(Clipping c) {
        return OptimizerSettings.Clipping.newBuilder().setValue(c.value()).setMaxNorm(c.maxNorm()).build();
    }

    static Clipping clipping(OptimizerSettings.Clipping c) {
        return new Clipping(c.getValue(), c.getMaxNorm());
    }

    static OptimizerSettings.LrSchedule lrSchedule(LrSchedule s) {
        return OptimizerSettings.LrSchedule.newBuilder().setWarmup(s.warmup()).setTotalSteps(s.totalSteps()).build();
    }

    static LrSchedule lrSchedule(OptimizerSettings.LrSchedule s) {
        return new LrSchedule(s.getWarmup(), s.getTotalSteps());
    }

    static OptimizerSettings.Lisa lisa(Lisa l) {
        return OptimizerSettings.Lisa.newBuilder().setGamma(l.gamma()).setPeriod(l.period()).build();
    }

    static Lisa lisa(OptimizerSettings.Lisa l) {
        return new Lisa(l.getGamma(), l.getPeriod());
    }

    static OptimizerSettings.LowRank lowRank(LowRank r) {
        return OptimizerSettings.LowRank.newBuilder().setRank(r.rank()).setRsoPeriod(r.rsoPeriod()).setGaloreGap(r.galoreGap())
                .setGaloreScale(r.galoreScale()).setLoraAlpha(r.loraAlpha()).build();
    }

    static LowRank lowRank(OptimizerSettings.LowRank r) {
        return new LowRank(r.getRank(), r.getRsoPeriod(), r.getGaloreGap(), r.getGaloreScale(), r.getLoraAlpha());
    }
}
