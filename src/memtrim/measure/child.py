"""The harness that runs inside the measured child process.

It is started as ``python [FLAGS] child.py RESULT MODE INTERVAL_MS NFRAMES -- TARGET ARGS``
where TARGET is ``PATH`` or ``-m MODULE``.  It runs the application as Python
would (``__main__``, ``sys.argv``, ``sys.path[0]``) and, at exit, writes what
it measured to RESULT as a Python literal (no imports needed to write it).

Modes, one per run so that they do not disturb each other:
  plain        peak RSS (VmHWM) at exit, wall and CPU time: the headline run
  imports      plus the RSS cost of every import (a wrapping meta-path finder)
  tracemalloc  plus traced bytes per import, and the top allocation lines and
               files at the highest traced level the sampler saw
  census       plus a census of live objects by type at the highest RSS seen
  arenas       plus ``sys._debugmallocstats()`` samples written to RESULT.arenas

This file must stay standard-library only and run on Python 3.9 and later: it
is executed by whatever interpreter the user chose with ``--python``.  It must
also stay cheap, because the bare interpreter is measured under it too (the
floor), and whatever it costs is subtracted only through that floor.
"""

import os
import sys
import time

_T0 = time.perf_counter()
# CPython deletes __file__ from a script's globals once it returns, before atexit runs
_HARNESS_FILE = __file__
_RESULT = {"wall_start": _T0, "exit_via": "unknown"}
_WRITTEN = []


def _status_kb():
    """Return the VmHWM/VmRSS/RssAnon/RssFile/RssShmem fields of /proc/self/status in kB."""
    out = {}
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith((b"VmHWM", b"VmRSS", b"RssAnon", b"RssFile", b"RssShmem")):
                    key, _, rest = line.partition(b":")
                    out[key.decode()] = int(rest.split()[0])
    except OSError:
        pass
    return out


def _record_exit(via):
    """Record peak RSS and times once, as early in the exit path as possible."""
    if _WRITTEN:
        return
    _WRITTEN.append(True)
    status = _status_kb()  # first: nothing below may raise the high-water mark before this
    t = os.times()
    _RESULT["status_kb"] = status
    _RESULT["wall"] = time.perf_counter() - _T0
    _RESULT["cpu"] = [t[0], t[1], t[2], t[3]]
    if _RESULT["exit_via"] == "unknown":
        _RESULT["exit_via"] = via
    try:
        _finish_mode()
    except Exception as e:  # an instrument's failure must never cost the headline figures
        _RESULT["harness_error"] = f"{type(e).__name__}: {e}"
    try:
        tmp = _RESULT_PATH + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(repr(_RESULT))
        os.replace(tmp, _RESULT_PATH)
    except Exception as e:  # the parent falls back to its own samples
        sys.__stderr__.write(f"memtrim harness: cannot write result: {e!r}\n")


# ---------------------------------------------------------------------------
# import costs


class _ImportRecorder:
    """Wrap module loaders to record each import's RSS, traced bytes and time.

    The finder sits first on ``sys.meta_path`` and delegates to the others.  It
    patches the *instance* methods ``create_module``/``exec_module`` of the
    loader it gets back (file loaders are one instance per module), so
    ``isinstance`` checks, ``__loader__`` and resource readers are untouched.
    Loaders that are classes (built-in and frozen modules) are not wrapped:
    their small cost stays in the importing module's self cost.
    """

    def __init__(self, traced):
        import _thread

        self._ident = _thread.get_ident
        self._stacks = {}
        self.events = []  # [name, parent_index, rss0, rss1, traced0, traced1, t0, t1, ok]
        self._traced = traced
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        import gc

        self._gc = gc
        self._gc_paused = set()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self):
        return int(os.pread(self._statm, 128, 0).split()[1]) * self._page

    def _begin(self, name):
        stack = self._stacks.setdefault(self._ident(), [])
        if stack and stack[-1][0] == name:  # exec_module after our create_module
            return
        if not stack and self._gc.isenabled():
            # a collection during an import frees unrelated memory and would be
            # charged to the importing module (even making its cost negative)
            self._gc.disable()
            self._gc_paused.add(self._ident())
        parent = stack[-1][1] if stack else -1
        index = len(self.events)
        traced = self._traced() if self._traced else 0
        self.events.append([name, parent, self._rss(), 0, traced, 0, time.perf_counter(), 0.0, 0])
        stack.append((name, index))

    def _end(self, name, ok):
        stack = self._stacks.get(self._ident())
        if not stack or all(entry[0] != name for entry in stack):
            return
        rss = self._rss()
        traced = self._traced() if self._traced else 0
        now = time.perf_counter()
        while True:  # close anything left open above it, so one miss cannot cascade
            top, index = stack.pop()
            event = self.events[index]
            event[3], event[5], event[7] = rss, traced, now
            event[8] = 1 if ok and top == name else 0
            if top == name:
                break
        if not stack and self._ident() in self._gc_paused:
            self._gc_paused.discard(self._ident())
            if not self._gc_paused:
                self._gc.enable()

    def find_spec(self, name, path=None, target=None):
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                self._wrap(spec.loader)
                return spec
        return None

    def _wrap(self, loader):
        if (
            loader is None
            or isinstance(loader, type)
            or "_memtrim_wrapped" in getattr(loader, "__dict__", {"_memtrim_wrapped": 1})
        ):
            return
        recorder = self
        create = getattr(loader, "create_module", None)
        execute = loader.exec_module

        def create_module(spec):
            recorder._begin(spec.name)
            try:
                return create(spec) if create is not None else None
            except BaseException:
                recorder._end(spec.name, False)
                raise

        def exec_module(module):
            # the spec's name, not __name__: some extension modules name themselves
            # differently (_decimal's module object is called "decimal")
            spec = getattr(module, "__spec__", None)
            name = spec.name if spec is not None else module.__name__
            recorder._begin(name)
            ok = False
            try:
                execute(module)
                ok = True
            finally:
                recorder._end(name, ok)

        try:
            loader.create_module = create_module
            loader.exec_module = exec_module
            loader._memtrim_wrapped = True
        except (AttributeError, TypeError):
            pass


# ---------------------------------------------------------------------------
# tracemalloc: top lines and files at the highest traced level seen


class _PeakWatcher:
    """A sampler thread that snapshots tracemalloc whenever a new traced peak is reached."""

    def __init__(self, interval, top=40):
        self.interval = interval
        self.top = top
        self.best = 0
        self.summary = None
        self.error = None
        self.snapshot = None
        self.snapshot_traced = 0
        self.snapshot_count = 0
        self.snapshot_seconds = 0.0
        self._next_snapshot = 0.0
        self._stop = False

    def start(self):
        import threading

        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="memtrim-peak", daemon=True)
        self._thread.start()

    def _loop(self):
        import tracemalloc

        while not self._stop and tracemalloc.is_tracing():
            try:
                self.check()
            except Exception as e:  # keep the app running; say what went wrong
                self.error = f"{type(e).__name__}: {e}"
                return
            time.sleep(self.interval)

    def check(self, final=False):
        # one check at a time: the final one at exit must see the thread's last result
        with self._lock:
            self._check(final)

    def _check(self, final):
        import tracemalloc

        if not tracemalloc.is_tracing():
            return
        current, _ = tracemalloc.get_traced_memory()
        # a new peak at least 5% above the last one kept (or the final state
        # if nothing was kept yet): keep only the top rows, never the snapshot
        due = time.perf_counter() >= self._next_snapshot
        if (current > self.best * 1.05 and (due or final)) or (final and self.snapshot is None):
            started = time.perf_counter()
            # keep the raw snapshot (tracemalloc does not trace it) and compute its
            # statistics once, at exit: they cost several times the snapshot itself
            self.snapshot = None
            self.snapshot = tracemalloc.take_snapshot()
            self.snapshot_traced = current
            self.best = current
            # a snapshot of a large heap costs about a second: space them by their
            # cost, so the run stays within a few times the plain run's time
            cost = time.perf_counter() - started
            self._next_snapshot = time.perf_counter() + cost
            self.snapshot_count += 1
            self.snapshot_seconds += cost
        if final and self.snapshot is not None:
            self.summary = self._summarize(self.snapshot, self.snapshot_traced)
            self.snapshot = None

    def _summarize(self, snapshot, current):
        import tracemalloc

        snapshot = snapshot.filter_traces(
            (
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, _HARNESS_FILE),
            )
        )
        stats = snapshot.statistics("lineno")
        lines = [
            [s.traceback[0].filename, s.traceback[0].lineno, s.size, s.count]
            for s in stats[: self.top]
        ]
        per_file = {}
        for stat in stats:  # files from the line totals: one grouping pass, not two
            entry = per_file.setdefault(stat.traceback[0].filename, [0, 0])
            entry[0] += stat.size
            entry[1] += stat.count
        ranked = sorted(per_file.items(), key=lambda kv: kv[1][0], reverse=True)
        files = [[name, size, count] for name, (size, count) in ranked[: self.top]]
        return {"traced": current, "lines": lines, "files": files}


class _CensusWatcher:
    """A sampler thread that takes a census of live objects at each new RSS high.

    It runs without tracemalloc (which would trace the census's own allocations
    and make it several times slower).  A census allocates a set of ids and a
    list of referents; its own RSS growth raises the bar for the next one.
    """

    def __init__(self, interval, top=40):
        self.interval = interval
        self.top = top
        self.best = 0
        self.census = None
        self.rss_at_census = 0
        self.count = 0
        self.seconds = 0.0
        self.error = None
        self._next = 0.0
        self._stop = False
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self):
        return int(os.pread(self._statm, 128, 0).split()[1]) * self._page

    def start(self):
        import threading

        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="memtrim-census", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            try:
                self.check()
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
                return
            time.sleep(self.interval)

    def check(self, final=False):
        with self._lock:
            rss = self._rss()
            due = time.perf_counter() >= self._next
            late = final and (self.census is None or rss > self.rss_at_census * 1.05)
            if (rss > self.best * 1.05 and due) or late:
                started = time.perf_counter()
                self.census = None
                self.census = _census(self.top)
                self.rss_at_census = rss
                cost = time.perf_counter() - started
                self.count += 1
                self.seconds += cost
                self.best = max(rss, self._rss())
                # a census of millions of objects takes seconds: space those by 4x
                self._next = time.perf_counter() + (4 * cost if cost > 0.05 else 0.0)


def _type_name(tp):
    """``module.Qualname`` of a type; metaclasses may make these attributes descriptors."""
    module = getattr(tp, "__module__", None)
    qualname = getattr(tp, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = getattr(tp, "__name__", None)
        if not isinstance(qualname, str):
            qualname = repr(tp)
    if not isinstance(module, str) or module == "builtins":
        return qualname
    return module + "." + qualname


def _census(top):
    """Count live objects by type: gc-tracked ones plus their direct referents."""
    import gc

    sizeof = sys.getsizeof
    seen = set()
    counts = {}
    names = {}
    tracked = gc.get_objects()
    for group in (tracked, gc.get_referents(*tracked)):
        for obj in group:
            oid = id(obj)
            if oid in seen:
                continue
            seen.add(oid)
            tp = type(obj)
            name = names.get(tp)
            if name is None:
                name = names[tp] = _type_name(tp)

            try:
                size = sizeof(obj)
            except Exception:
                size = 0
            entry = counts.get(name)
            if entry is None:
                counts[name] = [1, size]
            else:
                entry[0] += 1
                entry[1] += size
    del tracked, seen
    rows = sorted(counts.items(), key=lambda kv: kv[1][1], reverse=True)
    return {
        "objects": sum(v[0] for v in counts.values()),
        "bytes": sum(v[1] for v in counts.values()),
        "types": [[k, v[0], v[1]] for k, v in rows[:top]],
    }


# ---------------------------------------------------------------------------
# arenas: sys._debugmallocstats() writes to C-level fd 2; capture it to a file


class _ArenaSampler:
    """Append ``sys._debugmallocstats()`` dumps to a file periodically; keep nothing in memory."""

    SEPARATOR = "\n#memtrim-sample t=%.6f\n"

    def __init__(self, path, interval):
        self.path = path
        self.interval = interval
        self._stop = False
        self._out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._scratch = path + ".one"

    def sample(self):
        if not hasattr(sys, "_debugmallocstats"):
            return
        fd = os.open(self._scratch, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        saved = os.dup(2)
        try:
            try:
                sys.stderr.flush()
            except Exception:
                pass
            os.dup2(fd, 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        size = os.lseek(fd, 0, os.SEEK_END)
        data = os.pread(fd, size, 0)
        os.close(fd)
        os.write(self._out, (self.SEPARATOR % (time.perf_counter() - _T0)).encode() + data)

    def start(self):
        import threading

        self.sample()
        self._thread = threading.Thread(target=self._loop, name="memtrim-arenas", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            time.sleep(self.interval)
            if not self._stop:
                self.sample()

    def finish(self):
        self._stop = True
        self.sample()
        os.close(self._out)
        try:
            os.unlink(self._scratch)
        except OSError:
            pass


_MODE_STATE = {}


def _finish_mode():
    """Stop the mode's instruments and copy what they gathered into the result."""
    recorder = _MODE_STATE.get("imports")
    if recorder is not None:
        _RESULT["imports"] = recorder.events
        try:
            sys.meta_path.remove(recorder)
        except ValueError:
            pass
    watcher = _MODE_STATE.get("watcher")
    if watcher is not None:
        import tracemalloc

        watcher._stop = True
        watcher.check(final=True)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        _RESULT["tracemalloc"] = {
            "peak": peak,
            "cost": {
                "snapshots": watcher.snapshot_count,
                "snapshot_seconds": round(watcher.snapshot_seconds, 3),
            },
            "final": current,
            "nframes": _MODE_STATE.get("nframes", 1),
            "at_peak": watcher.summary,
            "error": watcher.error,
        }
    census = _MODE_STATE.get("census")
    if census is not None:
        census._stop = True
        census.check(final=True)
        _RESULT["census"] = {
            "census": census.census,
            "rss_at_census": census.rss_at_census,
            "count": census.count,
            "seconds": round(census.seconds, 3),
            "error": census.error,
        }
    sampler = _MODE_STATE.get("arenas")
    if sampler is not None:
        sampler.finish()
        _RESULT["arenas_file"] = sampler.path


def _start_mode(mode, interval, nframes):
    if mode in ("imports", "tracemalloc"):
        traced = None
        if mode == "tracemalloc":
            import tracemalloc

            tracemalloc.start(nframes)
            _MODE_STATE["nframes"] = nframes
            traced = tracemalloc.get_traced_memory
            watcher = _PeakWatcher(interval)
            _MODE_STATE["watcher"] = watcher
            watcher.start()
        recorder = _ImportRecorder((lambda: traced()[0]) if traced else None)
        _MODE_STATE["imports"] = recorder
        sys.meta_path.insert(0, recorder)
    elif mode == "census":
        watcher = _CensusWatcher(interval)
        _MODE_STATE["census"] = watcher
        watcher.start()
    elif mode == "arenas":
        sampler = _ArenaSampler(_RESULT_PATH + ".arenas", interval)
        _MODE_STATE["arenas"] = sampler
        sampler.start()


# ---------------------------------------------------------------------------
# running the target as `python SCRIPT` / `python -m MODULE` would


def _set_path0(entry):
    """Put the script's folder (or the cwd for -m) first on sys.path, unless -P/-I say not to."""
    if not getattr(sys.flags, "safe_path", False):
        sys.path[0] = entry  # replaces the harness's own folder; under -P it was never added


def _run_script(path, args):
    import types

    sys.argv = [path] + args
    if os.path.isdir(path) or not path.endswith((".py", ".pyw")) and _is_zip(path):
        import runpy

        _set_path0(path)
        runpy.run_path(path, run_name="__main__")
        return
    _set_path0(os.path.dirname(os.path.abspath(path)))
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        _RESULT["error"] = ["unreadable", f"{path}: {e.strerror}"]
        _RESULT["exit_via"] = "error"
        sys.exit(2)
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        _RESULT["error"] = ["syntax", f"{e.filename or path}:{e.lineno}: {e.msg}"]
        _RESULT["exit_via"] = "error"
        sys.exit(2)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = sys.modules["builtins"]
    main.__cached__ = None
    main.__spec__ = None
    main.__loader__ = None
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _is_zip(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _run_module(name, args):
    import runpy

    sys.argv = ["-m"] + args  # runpy's alter_sys replaces argv[0] with the module's file
    _set_path0(os.getcwd())
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def _report_exception(exc):
    """Print an uncaught exception as Python would, without this harness's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _HARNESS_FILE:
        tb = tb.tb_next
    exc.__traceback__ = tb  # some versions print the traceback held by the exception itself
    sys.excepthook(type(exc), exc, tb)


def main():
    global _RESULT_PATH
    argv = sys.argv[1:]
    _RESULT_PATH, mode, interval_ms, nframes = argv[0], argv[1], float(argv[2]), int(argv[3])
    target = argv[5:]  # argv[4] == "--"
    _RESULT["mode"] = mode
    _RESULT["python"] = {
        "version": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "venv": sys.prefix != sys.base_prefix,
        "site": "site" in sys.modules,
        "optimize": sys.flags.optimize,
    }

    real_exit = os._exit

    def _exit_hook(code):
        _RESULT["exit_via"] = "os._exit"
        _record_exit("os._exit")
        real_exit(code)

    os._exit = _exit_hook
    import atexit

    atexit.register(_record_exit, "normal")  # registered first, so it runs after the app's
    _start_mode(mode, interval_ms / 1000.0, nframes)
    try:
        if target[0] == "-m":
            _run_module(target[1], target[2:])
        else:
            _run_script(target[0], target[1:])
        _RESULT["exit_via"] = "normal"
    except SystemExit as e:
        if _RESULT["exit_via"] == "unknown":
            _RESULT["exit_via"] = "sys.exit"
        raise SystemExit(e.code) from None
    except BaseException as e:
        _RESULT["exit_via"] = "exception"
        _RESULT["exception"] = type(e).__name__
        if isinstance(e, SyntaxError):
            _RESULT["error"] = ["syntax", f"{e.filename}:{e.lineno}: {e.msg}"]
        _report_exception(e)
        sys.exit(130 if isinstance(e, KeyboardInterrupt) else 1)


_RESULT_PATH = ""

if __name__ == "__main__":
    main()
