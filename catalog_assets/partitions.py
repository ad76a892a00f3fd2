"""Image batches as dynamic partitions: `product_catalog` adds `batch-NNNN` keys as the catalog grows, so
existing partitions never reshuffle and the UI's "backfill failed and missing" selection keeps working."""

from dagster import DynamicPartitionsDefinition

BATCH_PARTITIONS_NAME = "product_batches"

product_batches = DynamicPartitionsDefinition(name=BATCH_PARTITIONS_NAME)
