"""tests/common/smaps.py -- the one /proc/PID/smaps reader of the Python
test scripts (tests/jemalloc/vmas.py, tests/databases/heapcheck.py); the C
tests and tools have tests/common/smaps.c, the shell scripts smaps.sh.

vmas(pid) yields one dict per VMA, in address order:
  start, end   addresses (ints)
  perm         'rw-p', ...
  name         the path or [stack]/[heap]/... ('' for anonymous)
  flags        the VmFlags mnemonics, a list ('lo', 'lf', 'sh', ...)
  kb           every "Field: N kB" line, in kB ({'Rss': 12, 'Locked': 0, ...})
"""


def is_lockonfault(vma):
    """VM_LOCKED and VM_LOCKONFAULT: what mlock2(MLOCK_ONFAULT) sets."""
    return 'lo' in vma['flags'] and 'lf' in vma['flags']


def _header(parts):
    # "start-end perm offset dev inode [name...]": the first field has a '-'
    # and no ':' (field lines start with "Name:")
    if len(parts) < 5 or '-' not in parts[0] or parts[0].endswith(':'):
        return None
    lo, hi = parts[0].split('-', 1)
    return {'start': int(lo, 16), 'end': int(hi, 16), 'perm': parts[1],
            'name': ' '.join(parts[5:]), 'flags': [], 'kb': {}}


def vmas(pid):
    cur = None
    with open(f'/proc/{pid}/smaps') as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            hdr = _header(parts)
            if hdr is not None:
                if cur is not None:
                    yield cur
                cur = hdr
            elif cur is None:
                continue
            elif parts[0] == 'VmFlags:':
                cur['flags'] = parts[1:]
            elif len(parts) >= 3 and parts[2] == 'kB':
                cur['kb'][parts[0].rstrip(':')] = int(parts[1])
    if cur is not None:
        yield cur
