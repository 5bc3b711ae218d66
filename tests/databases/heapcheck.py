#!/usr/bin/env python3
# tests/databases/heapcheck.py -- what the kernel says about one process's
# memory, for the database tests: reads /proc/PID/smaps (tests/common/smaps.py)
# and prints one line
#   anon_kb=N locked_kb=N lolf_anon_kb=N shared_rss_kb=N shared_pss_kb=N
#   shared_locked_kb=N shared_lolf_kb=N
# private anonymous = VMAs with no file (or [heap]) and no "sh" flag, minus
# [stack]/[vdso]/[vvar]; lolf_anon = their Anonymous bytes in VMAs whose
# VmFlags hold both "lo" and "lf" (a fork child's Locked: is proportional to
# sharing, its flags are not); shared = VMAs with "sh" that are anonymous
# shared memory or tmpfs files (/dev/zero, /SYSV, /dev/shm, memfd).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'common'))
from smaps import is_lockonfault, vmas  # noqa: E402

SHARED_NAMES = ('/dev/zero', '/SYSV', '/dev/shm/', '/memfd:', '/PostgreSQL.')


def main(pid):
    t = dict(anon=0, locked=0, lolf_anon=0, bss=0, shared_rss=0, shared_pss=0,
             shared_locked=0, shared_lolf=0)
    prev = None
    for v in vmas(pid):
        after_file = prev is not None and prev['end'] == v['start'] and prev['name'].startswith('/')
        prev = v
        kb, name = v['kb'], v['name']
        if 'sh' in v['flags']:
            if name.startswith(SHARED_NAMES) or name == '[anon_shmem]':
                t['shared_rss'] += kb.get('Rss', 0)
                t['shared_pss'] += kb.get('Pss', 0)
                t['shared_locked'] += kb.get('Locked', 0)
                if is_lockonfault(v):
                    t['shared_lolf'] += kb.get('Rss', 0)
            continue
        if name not in ('', '[heap]'):
            continue
        if name == '' and after_file:
            t['bss'] += kb.get('Anonymous', 0)
            continue
        t['anon'] += kb.get('Anonymous', 0)
        t['locked'] += kb.get('Locked', 0)
        if is_lockonfault(v):
            t['lolf_anon'] += kb.get('Anonymous', 0)
    print(' '.join('%s_kb=%d' % (k, v) for k, v in t.items()))


if __name__ == '__main__':
    main(sys.argv[1])
