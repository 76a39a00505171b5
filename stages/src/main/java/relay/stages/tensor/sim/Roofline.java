package relay.stages.tensor.sim;

/**
 * What a kernel costs on a device described by its peak: a kernel takes the longer of its arithmetic at
 * {@code flops} per second and its memory traffic at {@code bytesPerSecond}, plus a fixed {@code launchSeconds}
 * (a GPU's kernel launch, a CPU's call into its thread pool). Matrix products reach the peak; everything else is
 * bound by memory. A plan's times are only as good as these three numbers, so they are stated with it.
 */
public record Roofline(double flops, double bytesPerSecond, double launchSeconds) {

    public Roofline {
        if (!(flops > 0) || !(bytesPerSecond > 0) || !(launchSeconds >= 0)) {
            throw new IllegalArgumentException("a roofline needs flops > 0, bandwidth > 0 and launch time ≥ 0; got "
                    + flops + ", " + bytesPerSecond + ", " + launchSeconds);
        }
    }

    /** Seconds for a kernel of {@code flops} arithmetic operations moving {@code bytes} to and from memory. */
    public double seconds(double flops, double bytes) {
        return Math.max(flops / this.flops, bytes / bytesPerSecond) + launchSeconds;
    }
}
