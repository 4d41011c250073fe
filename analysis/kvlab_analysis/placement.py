"""Direct labels next to scatter points, placed so they do not overlap.

Greedy: points are labelled from the most crowded first; each label tries a
ring of offsets and takes the first whose box overlaps no placed label, no
point and stays inside the axes; if none fits, the offset with the least
overlap, further out, with a thin leader line.  Works in display units after
one draw, so it is exact for the final layout as long as the axes limits do
not change afterwards.
"""

from __future__ import annotations

import numpy as np

# (dx, dy) in points, and the text alignment that keeps the box off the point.
_OFFSETS = [((6, 0), "left", "center"), ((-6, 0), "right", "center"),
            ((0, 6), "center", "bottom"), ((0, -7), "center", "top"),
            ((5, 5), "left", "bottom"), ((5, -5), "left", "top"),
            ((-5, 5), "right", "bottom"), ((-5, -5), "right", "top")]
_FAR = [((dx * 3, dy * 3), ha, va) for (dx, dy), ha, va in _OFFSETS]


def _overlap(a, b) -> float:
    dx = min(a[2], b[2]) - max(a[0], b[0])
    dy = min(a[3], b[3]) - max(a[1], b[1])
    return dx * dy if dx > 0 and dy > 0 else 0.0


def label_all(fig, jobs, fontsize: float = 8) -> None:
    """Label points on several axes of ``fig``.

    ``jobs`` = [(ax, xs, ys, texts, other_xs, other_ys), ...]: the points to
    label and further points the labels must not cover.  Call it last, after
    the legends, so that the layout no longer moves.
    """
    jobs = [job for job in jobs if len(job[3])]
    if not jobs:
        return
    for ax, *_ in jobs:
        ax.set_xlim(ax.get_xlim())  # freeze limits: labels are placed for these
        ax.set_ylim(ax.get_ylim())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax, xs, ys, texts, other_xs, other_ys in jobs:
        _label_axes(ax, renderer, xs, ys, texts, other_xs, other_ys, None, fontsize)


def _label_axes(ax, renderer, xs, ys, texts, other_xs, other_ys, colors, fontsize: float) -> None:
    fig = ax.figure
    to_display = ax.transData.transform
    points = to_display(np.column_stack([xs, ys]))
    others = to_display(np.column_stack([other_xs, other_ys])) if len(other_xs) else points[:0]
    scale = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    pad = 5 * scale  # a marker's radius and a little air
    obstacles = [(px - pad, py - pad, px + pad, py + pad) for px, py in
                 np.concatenate([points, others])]
    crowding = [sum(np.hypot(*(p - q)) < 40 * scale for q in points) for p in points]
    for i in sorted(range(len(texts)), key=lambda k: -crowding[k]):
        best = None
        for offsets, leader in ((_OFFSETS, False), (_FAR, True)):
            for (dx, dy), ha, va in offsets:
                text = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy),
                                   textcoords="offset points", ha=ha, va=va, fontsize=fontsize,
                                   color=colors[i] if colors is not None else "black",
                                   annotation_clip=False)
                box = text.get_window_extent(renderer)
                box = (box.x0, box.y0, box.x1, box.y1)
                outside = (box[0] < frame.x0 or box[2] > frame.x1 or box[1] < frame.y0
                           or box[3] > frame.y1)
                cost = sum(_overlap(box, o) for o in obstacles) + (1e6 if outside else 0)
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, text, box, leader, (dx, dy))
                else:
                    text.remove()
                if cost == 0:
                    break
            if best[0] == 0:
                break
        cost, text, box, leader, (dx, dy) = best
        if leader:
            text.remove()
            text = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy),
                               textcoords="offset points", ha=text.get_ha(), va=text.get_va(),
                               fontsize=fontsize,
                               color=colors[i] if colors is not None else "black",
                               arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"},
                               annotation_clip=False)
        text.set_in_layout(False)
        obstacles.append(box)
