"""Drawing the graph model: view planning (collapse, focus, filter), DOT text, and SVG through `dot`."""
from quantviz.render.dot import to_dot
from quantviz.render.svg import dot_available, dot_to_svg
from quantviz.render.view import ViewPlan, ViewSpec, plan_view

__all__ = ["ViewPlan", "ViewSpec", "dot_available", "dot_to_svg", "plan_view", "to_dot"]
