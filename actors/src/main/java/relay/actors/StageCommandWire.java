package relay.actors;

import java.nio.ByteBuffer;
import org.apache.pekko.actor.typed.ActorRef;
import relay.transport.proto.Activation;
import relay.transport.proto.Empty;
import relay.transport.proto.ReplicaTensor;
import relay.transport.proto.TiedTensor;
import relay.transport.proto.TokenBatch;

/** The Protobuf header of every {@link StageCommand}, and the command read back from it and the values after it. */
final class StageCommandWire {
    private StageCommandWire() {}

    static relay.transport.proto.StageCommand stageCommand(StageCommand c, Wire w) {
        var b = relay.transport.proto.StageCommand.newBuilder();
        if (c instanceof StageCommand.Connect m) {
            var p = relay.transport.proto.Connect.newBuilder();
            m.stages().forEach(s -> p.addStages(w.ref(s)));
            p.addAllChannels(m.channels());
            b.setConnect(p);
        } else if (c instanceof StageCommand.LeftDevice m) {
            b.setLeftDevice(relay.transport.proto.LeftDevice.newBuilder().setPosition(Wire.position(m.pos())).setForward(m.forward()));
        } else if (c instanceof StageCommand.Tokens m) {
            b.setTokens(tokens(m.pos(), m.ids()).addAllPositions(Wire.list(m.positions())));
        } else if (c instanceof StageCommand.Targets m) {
            b.setTargets(tokens(m.pos(), m.ids()).setCounted(m.countedInPass()));
        } else if (c instanceof StageCommand.Forward m) {
            b.setForward(Activation.newBuilder().setPosition(Wire.position(m.pos())).setTensor(Wire.shape(m.activation()))
                    .addAllPositions(Wire.list(m.positions())));
        } else if (c instanceof StageCommand.Backward m) {
            b.setBackward(Activation.newBuilder().setPosition(Wire.position(m.pos())).setTensor(Wire.shape(m.gradient())));
        } else if (c instanceof StageCommand.SetTrainable m) {
            b.setSetTrainable(relay.transport.proto.SetTrainable.newBuilder().setStep(m.step()).setTrainable(m.trainable()));
        } else if (c instanceof StageCommand.Redraw m) {
            b.setRedraw(relay.transport.proto.Redraw.newBuilder().setStep(m.step()).setDraw(m.draw()).setFresh(m.fresh()));
        } else if (c instanceof StageCommand.TiedGradient m) {
            b.setTiedGradient(TiedTensor.newBuilder().setStep(m.step()).setRow(m.row()).setTensor(Wire.shape(m.gradient())));
        } else if (c instanceof StageCommand.TiedWeights m) {
            b.setTiedWeights(TiedTensor.newBuilder().setStep(m.step()).setRow(m.row()).setTensor(Wire.shape(m.weights())));
        } else if (c instanceof StageCommand.ReplicaGradient m) {
            b.setReplicaGradient(replicaTensor(m.pass(), m.parameter(), m.row(), m.gradient()).setReplica(m.replica()));
        } else if (c instanceof StageCommand.ReplicaReady m) {
            b.setReplicaReady(ReplicaTensor.newBuilder().setPosition(Wire.position(m.pass())).setParameter(m.parameter()));
        } else if (c instanceof StageCommand.ReplicaWeights m) {
            b.setReplicaWeights(replicaTensor(m.pass(), m.parameter(), m.row(), m.weights()));
        } else if (c instanceof StageCommand.CollectWeights) {
            b.setCollectWeights(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.CollectState) {
            b.setCollectState(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.RestoreState m) {
            b.setRestoreState(relay.transport.proto.RestoreState.newBuilder().addAllParts(Wire.partHeaders(m.parts())).setLast(m.last()));
        } else if (c instanceof StageCommand.CollectTrace) {
            b.setCollectTrace(Empty.getDefaultInstance());
        } else if (c instanceof StageCommand.WriteShard m) {
            b.setWriteShard(relay.transport.proto.WriteShard.newBuilder().setStep(m.step()).setDirectory(m.directory()));
        } else if (c instanceof StageCommand.TakeSnapshot m) {
            var t = relay.transport.proto.TakeSnapshot.newBuilder().setStep(m.step()).setKeepFrom(m.keepFrom()).addAllChannels(m.channels());
            m.holders().forEach(h -> t.addHolders(w.ref(h)));
            b.setTakeSnapshot(t);
        } else if (c instanceof StageCommand.RestoreSnapshot m) {
            b.setRestoreSnapshot(relay.transport.proto.RestoreSnapshot.newBuilder().setSources(m.sources()).setState(m.state())
                    .addAllParts(Wire.partHeaders(m.parts())).setLast(m.last()));
        } else {
            throw Codecs.unknown(c);
        }
        return b.build();
    }

    static StageCommand stageCommand(relay.transport.proto.StageCommand p, ByteBuffer in, Wire w) {
        return switch (p.getCommandCase()) {
            case CONNECT -> new StageCommand.Connect(p.getConnect().getStagesList().stream().<ActorRef<StageCommand>>map(w::ref).toList(),
                    p.getConnect().getChannelsList());
            case LEFT_DEVICE -> new StageCommand.LeftDevice(Wire.position(p.getLeftDevice().getPosition()), p.getLeftDevice().getForward());
            case TOKENS -> new StageCommand.Tokens(Wire.position(p.getTokens().getPosition()), Wire.ints(p.getTokens().getTokensList()),
                    Wire.positions(p.getTokens().getPositionsList()));
            case TARGETS -> new StageCommand.Targets(Wire.position(p.getTargets().getPosition()), Wire.ints(p.getTargets().getTokensList()),
                    p.getTargets().getCounted());
            case FORWARD -> new StageCommand.Forward(Wire.position(p.getForward().getPosition()), Wire.payload(p.getForward().getTensor(), in),
                    Wire.positions(p.getForward().getPositionsList()));
            case BACKWARD -> new StageCommand.Backward(Wire.position(p.getBackward().getPosition()), Wire.payload(p.getBackward().getTensor(), in));
            case SET_TRAINABLE -> new StageCommand.SetTrainable(p.getSetTrainable().getStep(), p.getSetTrainable().getTrainable());
            case REDRAW -> new StageCommand.Redraw(p.getRedraw().getStep(), p.getRedraw().getDraw(), p.getRedraw().getFresh());
            case TIED_GRADIENT -> new StageCommand.TiedGradient(p.getTiedGradient().getStep(), p.getTiedGradient().getRow(),
                    Wire.payload(p.getTiedGradient().getTensor(), in));
            case TIED_WEIGHTS -> new StageCommand.TiedWeights(p.getTiedWeights().getStep(), p.getTiedWeights().getRow(),
                    Wire.payload(p.getTiedWeights().getTensor(), in));
            case REPLICA_GRADIENT -> new StageCommand.ReplicaGradient(Wire.position(p.getReplicaGradient().getPosition()),
                    p.getReplicaGradient().getParameter(), p.getReplicaGradient().getReplica(), p.getReplicaGradient().getRow(),
                    Wire.payload(p.getReplicaGradient().getTensor(), in));
            case REPLICA_READY -> new StageCommand.ReplicaReady(Wire.position(p.getReplicaReady().getPosition()), p.getReplicaReady().getParameter());
            case REPLICA_WEIGHTS -> new StageCommand.ReplicaWeights(Wire.position(p.getReplicaWeights().getPosition()),
                    p.getReplicaWeights().getParameter(), p.getReplicaWeights().getRow(), Wire.payload(p.getReplicaWeights().getTensor(), in));
            case COLLECT_WEIGHTS -> new StageCommand.CollectWeights();
            case COLLECT_STATE -> new StageCommand.CollectState();
            case RESTORE_STATE -> new StageCommand.RestoreState(Wire.readParts(p.getRestoreState().getPartsList(), in), p.getRestoreState().getLast());
            case COLLECT_TRACE -> new StageCommand.CollectTrace();
            case WRITE_SHARD -> new StageCommand.WriteShard(p.getWriteShard().getStep(), p.getWriteShard().getDirectory());
            case TAKE_SNAPSHOT -> new StageCommand.TakeSnapshot(p.getTakeSnapshot().getStep(), p.getTakeSnapshot().getKeepFrom(),
                    p.getTakeSnapshot().getHoldersList().stream().<ActorRef<StageHost.Command>>map(w::ref).toList(), p.getTakeSnapshot().getChannelsList());
            case RESTORE_SNAPSHOT -> new StageCommand.RestoreSnapshot(p.getRestoreSnapshot().getSources(), p.getRestoreSnapshot().getState(),
                    Wire.readParts(p.getRestoreSnapshot().getPartsList(), in), p.getRestoreSnapshot().getLast());
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a stage command without a command");
        };
    }

    private static ReplicaTensor.Builder replicaTensor(Position pass, String parameter, int row, relay.transport.TensorPayload t) {
        return ReplicaTensor.newBuilder().setPosition(Wire.position(pass)).setParameter(parameter).setRow(row).setTensor(Wire.shape(t));
    }

    private static TokenBatch.Builder tokens(Position pos, int[] ids) {
        TokenBatch.Builder b = TokenBatch.newBuilder().setPosition(Wire.position(pos));
        for (int id : ids) b.addTokens(id);
        return b;
    }
}
