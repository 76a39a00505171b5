package relay.stages.tensor.cpu;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * A device's native memory: large slabs taken from the system once and cut into blocks, best fit, a freed block
 * merged with its free neighbours. A training step allocates and frees the same tensors step after step, but not
 * of the same sizes in the same order (forward's activations are freed in backward while gradients and workspace of
 * other sizes are made); cutting them from slabs lets the memory freed by one size serve another, so what the
 * process keeps resident stays close to the most the ledger held at once. A block is never returned to the
 * system alone (that would cost an munmap, and a page fault per 4 KiB when the step asks again); a slab with
 * nothing in it is, once the free memory exceeds the limit.
 */
final class Arena {
    /** The smallest slab taken from the system; a larger block gets a slab of its own size. */
    static final long SLAB = 64L << 20;
    /** Blocks start at multiples of this, so BLAS and the vector kernels read whole cache lines. */
    static final long ALIGN = 64;

    /** Orders before every slab: a probe of a size finds the smallest free region at least that large. */
    private static final Slab PROBE = new Slab(Integer.MIN_VALUE, null, 0);

    private final String device;
    private final long freeLimit;
    private final List<Slab> slabs = new ArrayList<>();
    /** Free regions of every slab, smallest first, for best fit. */
    private final TreeSet<Region> free = new TreeSet<>(Comparator.comparingLong(Region::bytes)
            .thenComparingInt(r -> r.slab.id).thenComparingLong(Region::offset));
    private long slabBytes, freeBytes;
    private int nextId;

    /** A free or lent-out range of a slab. */
    record Region(Slab slab, long offset, long bytes) {}

    static final class Slab {
        final int id;
        final BytePointer base;
        final long bytes;
        /** Its free regions by offset, to merge a freed block with its neighbours. */
        final TreeMap<Long, Region> freeAt = new TreeMap<>();

        Slab(int id, BytePointer base, long bytes) {
            this.id = id;
            this.base = base;
            this.bytes = bytes;
        }
    }

    Arena(String device, long freeLimit) {
        this.device = device;
        this.freeLimit = freeLimit;
    }

    /** A block of at least {@code bytes}, its contents unspecified. */
    synchronized Region take(long bytes) {
        long size = Math.max(ALIGN, (bytes + ALIGN - 1) / ALIGN * ALIGN);
        Region fit = free.ceiling(new Region(PROBE, Long.MIN_VALUE, size));
        if (fit == null) fit = grow(size);
        remove(fit);
        if (fit.bytes > size) insert(new Region(fit.slab, fit.offset + size, fit.bytes - size));
        return new Region(fit.slab, fit.offset, size);
    }

    /** Takes the block back, merged with the free regions either side of it. */
    synchronized void give(Region block) {
        Slab s = block.slab;
        long offset = block.offset, bytes = block.bytes;
        Map.Entry<Long, Region> before = s.freeAt.lowerEntry(offset);
        if (before != null && before.getValue().offset + before.getValue().bytes == offset) {
            remove(before.getValue());
            offset = before.getValue().offset;
            bytes += before.getValue().bytes;
        }
        Region after = s.freeAt.get(block.offset + block.bytes);
        if (after != null) {
            remove(after);
            bytes += after.bytes;
        }
        insert(new Region(s, offset, bytes));
        if (freeBytes > freeLimit && bytes == s.bytes) release(s);
    }

    /** The block's memory as a pointer at its first byte. */
    static BytePointer pointer(Region r) {
        // A slab holds at most 2^31 − 1 bytes (a block is at most that, a shared slab 64 MiB), so a buffer can span it;
        // the slice starts at the block, and a pointer made from it has its address there.
        java.nio.ByteBuffer b = new BytePointer(r.slab.base).position(r.offset).limit(r.offset + r.bytes).asByteBuffer().slice();
        BytePointer p = new BytePointer(b);
        p.position(0).limit(r.bytes).capacity(r.bytes);
        return p;
    }

    /** Bytes taken from the system: what the device's memory can keep resident. */
    synchronized long reservedBytes() {
        return slabBytes;
    }

    /** Bytes of the slabs in no block: kept for the next allocations, so not in the ledger. */
    synchronized long freeBytes() {
        return freeBytes;
    }

    synchronized void clear() {
        for (Slab s : new ArrayList<>(slabs)) Pointer.free(s.base);
        slabs.clear();
        free.clear();
        slabBytes = 0;
        freeBytes = 0;
    }

    private Region grow(long size) {
        long bytes = Math.max(SLAB, size);
        // Untouched pages of a fresh slab are not resident: a slab larger than what its blocks ever use costs nothing.
        Pointer raw = Pointer.malloc(bytes);
        if (raw == null || raw.isNull()) {
            throw new OutOfMemoryError("device " + device + ": cannot allocate " + bytes + " bytes (" + slabBytes + " held)");
        }
        Slab s = new Slab(nextId++, new BytePointer(raw).capacity(bytes), bytes);
        slabs.add(s);
        slabBytes += bytes;
        Region all = new Region(s, 0, bytes);
        insert(all);
        return all;
    }

    private void release(Slab s) {
        remove(s.freeAt.firstEntry().getValue());
        slabs.remove(s);
        slabBytes -= s.bytes;
        Pointer.free(s.base);
    }

    private void insert(Region r) {
        free.add(r);
        r.slab.freeAt.put(r.offset, r);
        freeBytes += r.bytes;
    }

    private void remove(Region r) {
        free.remove(r);
        r.slab.freeAt.remove(r.offset);
        freeBytes -= r.bytes;
    }
}
