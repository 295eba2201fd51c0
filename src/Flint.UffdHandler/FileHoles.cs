using Flint.Sys;

namespace Flint.UffdHandler;

/// <summary>
/// Where the memory file has data, found once at start with SEEK_DATA/SEEK_HOLE: a Full snapshot's memory file leaves
/// zero and never-touched pages as holes, and a fault on a page that lies wholly in a hole is answered with the zero
/// page instead of a copy of zeroes read from the file. Looked up per fault by binary search: nothing allocated.
/// A file system without hole support reports the whole file as data, so every fault is then a copy (still correct).
/// </summary>
public sealed class FileHoles
{
    // Sorted, disjoint data extents [_starts[i], _ends[i]) of the file.
    private readonly long[] _starts;
    private readonly long[] _ends;

    public FileHoles(IReadOnlyList<(long Start, long End)> dataExtents)
    {
        _starts = new long[dataExtents.Count];
        _ends = new long[dataExtents.Count];
        for (int i = 0; i < dataExtents.Count; i++)
        {
            (_starts[i], _ends[i]) = dataExtents[i];
            // SEEK_DATA/SEEK_HOLE give them in order; a file changed meanwhile could not, and a wrong "hole" would hand
            // the guest zeroes where the file has data: refuse rather than guess.
            if (_ends[i] <= _starts[i] || (i > 0 && _starts[i] < _ends[i - 1]))
                throw new IOException("the memory file's data extents are not in order (was it written while the handler started?)");
        }
    }

    /// <summary>The holes of the open file <paramref name="fd"/> (its data extents, walked once).</summary>
    public static FileHoles Of(int fd) => new(SparseFile.DataExtents(fd));

    /// <summary>How many data extents the file has (the handler's start line says it).</summary>
    public int DataExtentCount => _starts.Length;

    /// <summary>The bytes of the file in data extents.</summary>
    public long DataBytes
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _starts.Length; i++) sum += _ends[i] - _starts[i];
            return sum;
        }
    }

    /// <summary>Whether [<paramref name="offset"/>, +<paramref name="length"/>) of the file lies wholly in a hole.</summary>
    public bool IsHole(ulong offset, ulong length)
    {
        if (length == 0 || offset > long.MaxValue || length > long.MaxValue - offset) return false;
        long start = (long)offset, end = start + (long)length;
        // The last extent starting before `end`: the range is a hole unless that extent reaches past `start`.
        int lo = 0, hi = _starts.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (_starts[mid] < end) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        return found < 0 || _ends[found] <= start;
    }
}
