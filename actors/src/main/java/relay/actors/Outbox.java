package relay.actors;

/** Where a stage's role sends what it computed; the stage actor delivers (and traces) it. */
interface Outbox {
    void toNext(StageCommand m, Position pos);

    void toPrevious(StageCommand m, Position pos);

    void toEmbedding(StageCommand m, Position pos);

    void toHead(StageCommand m, Position pos);

    /** To this stage in another replica of the pipeline. */
    void toReplica(int replica, StageCommand m, Position pos);

    /** The loss of the microbatch at pos (the head's). */
    void loss(Position pos, double loss);
}
