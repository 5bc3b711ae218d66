#!/usr/bin/env python3
"""vmas.py PID -- check that a process running the lofalloc jemalloc
whole-process mode keeps its jemalloc heap lock-on-fault.

Reads /proc/PID/smaps (tests/common/smaps.py).  A candidate heap VMA is an anonymous private
read-write mapping that is not a loaded object's bss (directly after a file
mapping), not named ([stack], [heap], ...) and not a thread stack (directly
above a PROT_NONE guard of at most 64 KiB).  Every candidate of 512 KiB or
more must be `lo lf` (jemalloc maps at least 2 MiB at a time), the unlocked
candidates must total less than 1 MiB (the dynamic loader's own small
mappings), and there must be lock-on-fault memory at all.
Prints a summary and FAIL lines; exit status 0 = pass."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'common'))
from smaps import is_lockonfault, vmas  # noqa: E402


def main():
    pid = sys.argv[1]
    allv = list(vmas(pid))
    prev = None
    lolf = lolf_locked = residue = 0
    ok = True
    for idx, v in enumerate(allv):
        size = v['end'] - v['start']
        lolf_here = is_lockonfault(v)
        if lolf_here:
            lolf += size
            lolf_locked += v['kb'].get('Locked', 0) * 1024
        candidate = (v['name'] == '' and v['perm'].startswith('rw') and v['perm'].endswith('p')
                     and not (prev and prev['name'] and prev['end'] == v['start'])
                     and not (prev and prev['perm'] == '---p' and prev['end'] == v['start']
                              and prev['end'] - prev['start'] <= 65536))
        if candidate and not lolf_here:
            residue += size
            if size >= 512 * 1024:
                print(f'FAIL: unlocked anonymous VMA {v["start"]:#x}-{v["end"]:#x} '
                      f'({size >> 10} KiB, Rss {v["kb"].get("Rss", 0)} KiB)')
                for n in allv[max(0, idx - 2):idx + 3]:
                    print(f'      {n["start"]:#x}-{n["end"]:#x} {n["perm"]} {n["name"]} '
                          f'{" ".join(n["flags"])}')
                ok = False
        prev = v
    print(f'vmas: lo lf {lolf >> 10} KiB (Locked {lolf_locked >> 10} KiB), '
          f'unlocked anonymous candidates {residue >> 10} KiB')
    if residue >= 1024 * 1024:
        print('FAIL: unlocked anonymous memory >= 1 MiB')
        ok = False
    if lolf < 2 * 1024 * 1024:
        print('FAIL: no lock-on-fault heap at all')
        ok = False
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
