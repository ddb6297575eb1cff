def timed(it, **kw):
    import time as _t, os
    from topotrigger.features.stage import select_task
    t = _t.perf_counter()
    out = list(select_task(it, **kw))
    yield (os.getpid(), _t.perf_counter() - t)
