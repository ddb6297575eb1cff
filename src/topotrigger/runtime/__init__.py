"""Runtime: how every stage gets its Java and its SparkSession (`get_spark`), nothing else."""

from topotrigger.runtime.java import JavaHome, find_java
from topotrigger.runtime.spark import get_spark

__all__ = ["JavaHome", "find_java", "get_spark"]
