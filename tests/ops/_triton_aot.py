"""Compiling Triton kernels for real GPUs from the test suite, the one helper
every Triton compile test uses.

The compilation runs in a subprocess without TRITON_INTERPRET (once triton is
imported under the interpreter, triton.language's own @jit helpers are
interpreted functions and the code generator cannot compile anything): one
subprocess for the whole session, started by the first request, which answers
every op module's request in turn and compiles each distinct (kernel,
signature, constexprs, target, warps) once per session (two jobs that differ
only in a flag the kernel does not take are one compile), the distinct
compiles of a request in parallel in workers forked from it, one per CPU
(at most 8). Each job compiles
one kernel of a fastcam.kernels.triton module with its autotuner's last
configuration for one compute capability:

    dict(module=..., kernel="_x_kernel", tuner="_x", cc=80, dtype="fp32",
         constexprs={...}, types={...}, **tags)

(or, for a kernel launched with a configuration its launcher computes, no tuner
and ``config=dict(kwargs={...}, num_warps=n)``).
``constexprs`` are set where the kernel has an argument of that name (over the
configuration's); an argument's type is ``types[name]``, else ``"*" + dtype``
for a pointer (a name ending in ``_ptr`` or ``_buf``), else ``"i32"``; pointers
get 16-byte divisibility. A result is the job with ``n_configs`` (the
autotuner's configurations on GPU), ``ptx`` and ``cubin`` (its size, None when
ptxas was not run). ``kernels`` maps each module to the names of its kernels
and tuners; the subprocess checks it is the module's whole ``KERNELS`` tuple.
A job marked ``size_one`` (``size_one_jobs``) is compiled with every integer
argument the JIT would specialise set to 1 in turn, as the JIT does at run time
(an int argument equal to 1 becomes a constexpr), so code that only works on
tensor sizes fails here, on CPU.
Triton's on-disk cache is a fresh directory of the session: every kernel is
really compiled. When triton's CUDA backend cannot be loaded the calling test
is skipped."""
import atexit
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

import pytest

_SCRIPT = r"""
import importlib, json, multiprocessing, os, sys, traceback
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, sys.argv[1])
compiled = {}  # json [module, kernel, signature, constexprs, cc, num_warps] -> (ptx, cubin size)
pool = None    # forked workers (triton already imported), one per CPU, at most 8


def compile_key(key):
    # One triton.compile; in a worker, the arguments as a JSON key.
    module, kernel, sig, constexprs, cc, num_warps = json.loads(key)
    fn = getattr(importlib.import_module(module), kernel)
    attrs = {(i,): [["tt.divisibility", 16]]
             for i, n in enumerate(fn.arg_names) if sig[n].startswith("*")}
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=dict(constexprs), attrs=attrs),
                       target=GPUTarget("cuda", cc, 32), options={"num_warps": num_warps})
    return k.asm["ptx"], len(k.asm["cubin"]) if "cubin" in k.asm else None


def plan_one(job, fn, tuner, cfg, ones):
    # The compile a job needs (its key) and its result but for ptx and cubin.
    constexprs = dict(cfg.kwargs)
    constexprs.update({k: v for k, v in job["constexprs"].items() if k in fn.arg_names})
    constexprs.update({n: 1 for n in ones})  # what the JIT does with an int equal to 1
    sig = {}
    for n in fn.arg_names:
        if n in constexprs:
            sig[n] = "constexpr"
        elif n in job["types"]:
            sig[n] = job["types"][n]
        elif n.endswith(("_ptr", "_buf")):
            sig[n] = "*" + job["dtype"]
        else:
            sig[n] = "i32"
    key = json.dumps([job["module"], fn.__name__, sig, sorted(constexprs.items()), job["cc"],
                      cfg.num_warps])
    return key, dict(job, ones=sorted(ones), n_configs=len(tuner.configs))


def specialisable_ints(job, fn):
    # The integer arguments the JIT turns into constexprs when they equal 1: not
    # constexpr, not a pointer or typed argument, not in do_not_specialize.
    dns = {fn.arg_names[i] if isinstance(i, int) else i for i in fn.do_not_specialize}
    return [n for n, p in zip(fn.arg_names, fn.params)
            if not p.is_constexpr and not p.annotation and n not in job["constexprs"] and n not in job["types"]
            and not n.endswith(("_ptr", "_buf")) and n not in dns]


def run(spec):
    for module, tuners in spec["kernels"].items():
        mod = importlib.import_module(module)
        assert {getattr(mod, k) for k in tuners} == set(mod.KERNELS), \
            f"{module}: KERNELS and the autotuned launchers disagree"
    planned = []
    for job in spec["jobs"]:
        mod = importlib.import_module(job["module"])
        fn, tuner = getattr(mod, job["kernel"]), getattr(mod, job.get("tuner") or job["kernel"])
        if "config" in job:  # a launcher that picks its configuration itself
            tuner = type("Fixed", (), {})()
            tuner.configs = [triton.Config(job["config"]["kwargs"],
                                           num_warps=job["config"]["num_warps"])]
        if not job.get("size_one"):
            planned.append(plan_one(job, fn, tuner, tuner.configs[-1], []))
            continue
        # Every specialisable int alone equal to 1, then all of them at once; the
        # smallest configuration (the specialisation does not depend on it).
        names = specialisable_ints(job, fn)
        for ones in [[n] for n in names] + ([names] if len(names) > 1 else []):
            planned.append(plan_one(job, fn, tuner, tuner.configs[0], ones))
    # Each distinct compile once per session, in parallel where there are CPUs.
    todo = sorted({key for key, _ in planned} - set(compiled))
    global pool
    if pool is None and len(os.sched_getaffinity(0)) > 1:
        pool = multiprocessing.get_context("fork").Pool(min(len(os.sched_getaffinity(0)), 8))
    outputs = pool.map(compile_key, todo, chunksize=1) if pool and len(todo) > 1 else \
        [compile_key(key) for key in todo]
    compiled.update(zip(todo, outputs))
    return [dict(result, ptx=compiled[key][0], cubin=compiled[key][1]) for key, result in planned]


skip = None
for line in sys.stdin:  # one request (a JSON line) -> one answer line
    spec = json.loads(line)
    if skip is None:
        try:
            from triton.backends import backends
            backends["nvidia"].compiler(GPUTarget("cuda", spec["jobs"][0]["cc"], 32)).parse_options({})
            skip = ""
        except Exception as e:
            skip = "SKIP " + json.dumps(repr(e))
    if skip:
        print(skip, flush=True)
        continue
    try:
        print("RESULTS " + json.dumps(run(spec)), flush=True)
    except Exception:
        print("ERROR " + json.dumps(traceback.format_exc()), flush=True)
if pool is not None:
    pool.close()
    pool.join()
"""


class _Compiler:
    """The session's compile subprocess: requests on its stdin, one answer line
    each on its stdout (other output is kept for error messages)."""

    def __init__(self, cache_dir: str):
        import fastcam

        root = os.path.dirname(os.path.dirname(os.path.abspath(fastcam.__file__)))
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env["TRITON_CACHE_DIR"] = cache_dir  # no cache hits from earlier sessions
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, root], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # the process ended

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-4000:]

    def request(self, spec: dict, timeout: float) -> str:
        """The answer line (RESULTS/SKIP/ERROR ...) to one request."""
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        other = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "\n".join(other)[-2000:] + self._stderr_tail()
            if line.startswith(("RESULTS ", "SKIP ", "ERROR ")):
                return line
            other.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_compiler = None


def compile_for_gpu(jobs: list[dict], kernels: dict[str, dict[str, str]],
                    tmp_path_factory) -> list[dict]:
    """Compile every job (see the module docstring) in the session's compile
    subprocess; the results in the jobs' order."""
    global _compiler
    if _compiler is None or _compiler.proc.poll() is not None:
        _compiler = _Compiler(str(tmp_path_factory.mktemp("triton_cache")))
    answer = _compiler.request(dict(jobs=jobs, kernels=kernels), timeout=300)
    if answer.startswith("SKIP "):
        pytest.skip(f"triton's CUDA backend cannot be loaded here: {json.loads(answer[5:])}")
    assert answer.startswith("RESULTS "), json.loads(answer[6:]) + _compiler._stderr_tail()
    return json.loads(answer[8:])


def size_one_jobs(jobs: list[dict]) -> list[dict]:
    """The jobs again, marked ``size_one``: each is compiled once per integer
    argument the JIT would specialise (every one not in the kernel's
    ``do_not_specialize``) with that argument equal to 1 — Triton's JIT passes an
    int equal to 1 as a compile-time constant — and once with all of them equal
    to 1. Their results carry ``ones``, the names set to 1."""
    return [dict(job, size_one=True) for job in jobs]


def assert_size_one_compiled(results: list[dict], cc: int, module) -> None:
    """Every kernel of ``module`` compiled for sm_``cc`` with each of its
    specialisable integer arguments equal to 1 (see ``size_one_jobs``)."""
    res = [r for r in results if r["cc"] == cc and r.get("size_one")]
    assert {r["kernel"] for r in res} == {fn.__name__ for fn in module.KERNELS}
    for fn in module.KERNELS:
        mine = [r for r in res if r["kernel"] == fn.__name__]
        singles = {r["ones"][0] for r in mine if len(r["ones"]) == 1}
        assert singles, f"{fn.__name__}: no integer argument was specialised to 1"
        for r in mine:
            what = f"{r['kernel']} {r['dtype']} ones={r['ones']} sm_{cc}"
            assert f".entry {r['kernel']}" in r["ptx"], what
            assert f".target sm_{cc}" in r["ptx"], what


def assert_compiled(results: list[dict], cc: int, module, variants: int) -> None:
    """Every kernel of ``module`` (its ``KERNELS``) was compiled ``variants`` times
    for sm_``cc``, each with several autotuning configurations on GPU, giving PTX
    with its entry for that target (and a cubin where ptxas ran)."""
    res = [r for r in results if r["cc"] == cc and not r.get("size_one")]
    assert {r["kernel"] for r in res} == {fn.__name__ for fn in module.KERNELS}
    assert len(res) == variants * len(module.KERNELS)
    for r in res:
        what = f"{r['kernel']} {r['dtype']} flags={r['flag']} sm_{cc}"
        assert r["n_configs"] > 1, what  # several autotuning configs on GPU
        assert f".entry {r['kernel']}" in r["ptx"], what
        assert f".target sm_{cc}" in r["ptx"], what
        assert r["cubin"] is None or r["cubin"] > 0, what
