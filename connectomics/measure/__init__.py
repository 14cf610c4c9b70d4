"""Per-instance morphometrics: voxel count, volume, surface, sphericity, bounding box, centroid,
principal axes, skeleton length and branches, border contact, mean probability and intensity;
a CSV table and a summary PNG. ``api.measure_instances`` (slabs in this process or blocks on Dask),
``sums`` (per-block sums and their merge), ``shape`` (measures of one instance's crop),
``table`` (the CSV), ``summary`` (the PNG)."""
from connectomics.measure.api import length_categories, measure_instances
from connectomics.measure.summary import save_summary_png
from connectomics.measure.table import columns, read_table, write_table

__all__ = ["columns", "length_categories", "measure_instances", "read_table", "save_summary_png", "write_table"]
