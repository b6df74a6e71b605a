"""Panel groups: one module per group, each a few functions returning panel builders.

Functions that take `repeat` serve both dashboards: repeated once per selected pipeline (side by
side, overview) or single (a pipeline's detail dashboard, where the legend needs no pipeline).
"""
