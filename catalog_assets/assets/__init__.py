"""The asset graph: product_catalog → product_images[batch-NNNN] → image_manifest → linked_catalog,
and generation_report."""
