"""Spark-native and tree classifiers (Spark MLlib, XGBoost's Spark estimator) on the features datasets."""
