"""The registry's pure domain (no I/O).

- validation: parse_grid_features(FeatureCollection), validate_grid_import(batch, existing),
  grid_feature(grid), parse_staff_csv(text, grid_codes=..., unit_codes=...) — an error per
  bad row; apply a batch only when there are none.

What every service needs to READ the registry lives in `onegrid_common.registry_view`:
codes (GB/T 30428-style grid codes), geometry, locate (GridIndex), routing (Router).
"""
