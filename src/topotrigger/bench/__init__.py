"""`topotrigger bench`: the scalability study (each stage at 1 and 2 cores and on a 2-worker cluster)."""
