#!/usr/bin/env python3
# tests/databases/heapcheck.py -- what the kernel says about one process's
# memory, for the database tests: reads /proc/PID/smaps and prints one line
#   anon_kb=N locked_kb=N lolf_anon_kb=N shared_rss_kb=N shared_pss_kb=N
#   shared_locked_kb=N shared_lolf_kb=N
# private anonymous = VMAs with no file (or [heap]) and no "sh" flag, minus
# [stack]/[vdso]/[vvar]; lolf_anon = their Anonymous bytes in VMAs whose
# VmFlags hold both "lo" and "lf" (a fork child's Locked: is proportional to
# sharing, its flags are not); shared = VMAs with "sh" that are anonymous
# shared memory or tmpfs files (/dev/zero, /SYSV, /dev/shm, memfd).
import sys

def main(pid):
    t = dict(anon=0, locked=0, lolf_anon=0, bss=0, shared_rss=0, shared_pss=0,
             shared_locked=0, shared_lolf=0)
    vma = None
    prev = dict(end=None, name='')

    def flush(v):
        if v is None:
            return
        after_file = prev['end'] == v['start'] and prev['name'].startswith('/')
        prev['end'], prev['name'] = v['end'], v['name']
        flags = v['flags'].split()
        name = v['name']
        if 'sh' in flags:
            if (name.startswith('/dev/zero') or name.startswith('/SYSV') or
                    name.startswith('/dev/shm/') or name.startswith('/memfd:') or
                    name.startswith('/PostgreSQL.') or name == '[anon_shmem]'):
                t['shared_rss'] += v['Rss']
                t['shared_pss'] += v['Pss']
                t['shared_locked'] += v['Locked']
                if 'lo' in flags and 'lf' in flags:
                    t['shared_lolf'] += v['Rss']
            return
        if name not in ('', '[heap]'):
            return
        if name == '' and after_file:
            t['bss'] += v['Anonymous']
            return
        t['anon'] += v['Anonymous']
        t['locked'] += v['Locked']
        if 'lo' in flags and 'lf' in flags:
            t['lolf_anon'] += v['Anonymous']

    with open('/proc/%s/smaps' % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if '-' in parts[0] and ':' not in parts[0]:
                flush(vma)
                lo, hi = parts[0].split('-')
                vma = dict(start=int(lo, 16), end=int(hi, 16), name=' '.join(parts[5:]) if len(parts) > 5 else '', flags='',
                           Rss=0, Pss=0, Locked=0, Anonymous=0)
            elif parts[0] == 'VmFlags:':
                vma['flags'] = ' '.join(parts[1:])
            elif parts[0].rstrip(':') in ('Rss', 'Pss', 'Locked', 'Anonymous'):
                vma[parts[0].rstrip(':')] = int(parts[1])
    flush(vma)
    print(' '.join('%s_kb=%d' % (k, v) for k, v in t.items()))

if __name__ == '__main__':
    main(sys.argv[1])
