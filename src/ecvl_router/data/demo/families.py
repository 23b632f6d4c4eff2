"""The seven task families of the demo benchmark, each a function ``rng -> Task`` that renders one item.

| family | mirrors | what is rendered | what makes it hard (visible) |
|---|---|---|---|
| ``chart_reading`` | ChartQA | bar or line chart | no value labels, small font, many bars, line charts |
| ``scene_counting`` | GQA | coloured shapes on a cluttered background | clutter, small objects, low contrast, noise, larger counts |
| ``text_reading`` | VizWiz, OCR | a label or sign photographed badly | small font, blur, noise, low contrast, rotation |
| ``table_reasoning`` | MMMU-Pro | a price table, an arithmetic flow diagram, or a text-only word problem | reasoning steps, small font, table size |
| ``fine_attributes`` | MMStar | a few shapes with patterns, outlines, dots and shades | small details, dense patterns, subtle shades, distractors |
| ``open_description`` | WildVision | a landscape with houses, trees, people | number of elements, noise |
| ``text_questions`` | text-only chat queries | nothing: arithmetic stories, unit conversions, ordering puzzles, calendar questions, number sequences | reasoning steps (1–5), question length |

Every question's reference answer is derived from what was drawn (or, for text-only questions, computed
by the generator).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ecvl_router.data.demo import drawing as dr
from ecvl_router.data.demo.task import Task, contrast_hardness, degradation_hardness, font_hardness, size_hardness

_TOPICS = (
    ("fruit", "Harvest by fruit (tons)", ("Apples", "Pears", "Plums", "Cherries", "Grapes", "Lemons", "Melons", "Figs", "Kiwis")),
    ("city", "Rainy days per year", ("Oslo", "Lima", "Perth", "Quito", "Cork", "Turin", "Kyoto", "Tunis", "Omaha")),
    ("team", "Points scored this season", ("Falcons", "Otters", "Comets", "Rangers", "Pilots", "Wolves", "Herons", "Titans", "Bears")),
    ("product", "Units sold last month", ("Kettles", "Lamps", "Chairs", "Clocks", "Mirrors", "Rugs", "Vases", "Shelves", "Sofas")),
)
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SCENE_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
_SHAPES = ("circle", "square", "triangle")


def _pick(rng: np.random.Generator, options: Sequence[Any], k: int | None = None) -> Any:
    """One element of ``options`` (or ``k`` distinct ones, as a list)."""
    if k is None:
        return options[int(rng.integers(len(options)))]
    return [options[int(i)] for i in rng.choice(len(options), size=k, replace=False)]


def _others(rng: np.random.Generator, options: Sequence[Any], exclude: Any, k: int = 2) -> tuple[str, ...]:
    """Up to ``k`` distinct options different from ``exclude``, as strings."""
    rest = [o for o in dict.fromkeys(options) if o != exclude]
    return tuple(str(o) for o in _pick(rng, rest, min(k, len(rest))))


def _finish(image: Image.Image, rng: np.random.Generator, *, grey: bool, noise: float = 0.0, blur: float = 0.0) -> Image.Image:
    """Blur, then add pixel noise, then optionally convert to greyscale."""
    image = dr.add_noise(dr.blur(image, blur), rng, noise)
    return image.convert("L") if grey else image


# ---------------------------------------------------------------- chart reading (ChartQA-like)


def chart_reading(rng: np.random.Generator) -> Task:
    """A bar or line chart; read a value, find an extreme, or take a difference."""
    width, height = dr.canvas_size(rng, min_long=320)
    line = rng.random() < 0.35
    most = max(4, min(10, width // 45))  # keep category labels from overlapping
    n = int(rng.integers(4, most + 1)) if line else int(rng.integers(3, min(9, most) + 1))
    if line:
        first = int(rng.integers(2008, 2016))
        noun, title, labels = "year", "Yearly visitors (thousands)", [str(first + i) for i in range(n)]
    else:
        noun, title, names = _pick(rng, _TOPICS)
        labels = _pick(rng, names, n)
    step = int(_pick(rng, (1, 2, 5, 10, 50)))
    units = rng.choice(np.arange(1, 21), size=n, replace=False)  # distinct values: unique extremes
    values = [int(u) * step for u in units]
    annotated = rng.random() < 0.5
    font_px = int(np.clip(rng.integers(8, 17) * min(width, height) / 360, 7, 18))
    while font_px > 7 and max(dr.text_width(label, font_px) for label in labels) > 0.9 * (width - 60) / n:
        font_px -= 1
    grey = rng.random() < 0.1

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    tick = step * math.ceil(max(units) / 5)
    top = tick * 5
    left = dr.text_width(str(top), font_px) + 10
    plot = (left, 2 * font_px + 8, width - 10, height - 2 * font_px - 6)
    x0, y0, x1, y1 = plot
    draw.text((x0, 3), title, fill="black", font=dr.font(font_px + 1))

    def y_of(value: float) -> float:
        return y1 - (y1 - y0) * value / top

    for k in range(6):
        y = y_of(k * tick)
        draw.line((x0, y, x1, y), fill=(215, 215, 215))
        label = str(k * tick)
        draw.text((x0 - dr.text_width(label, font_px) - 5, y - font_px / 2), label, fill="black", font=dr.font(font_px))
    draw.line((x0, y0, x0, y1), fill="black")
    slot = (x1 - x0) / n
    colour = dr.COLOURS[_pick(rng, ("blue", "green", "orange", "purple", "red"))]
    points = []
    for i, (label, value) in enumerate(zip(labels, values)):
        cx = x0 + slot * (i + 0.5)
        if line:
            points.append((cx, y_of(value)))
        else:
            draw.rectangle((cx - 0.3 * slot, y_of(value), cx + 0.3 * slot, y1), fill=colour)
        draw.text((cx - dr.text_width(label, font_px) / 2, y1 + 3), label, fill="black", font=dr.font(font_px))
        if annotated:
            draw.text((cx - dr.text_width(str(value), font_px) / 2, y_of(value) - font_px - 3), str(value), fill="black", font=dr.font(font_px))
    if line:
        draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)

    kind = rng.random()
    if kind < 0.45:
        i = int(rng.integers(n))
        where = f"in {labels[i]}" if line else f"for {labels[i]}"
        question = f"What is the value {where} in the chart?"
        reference, near, steps = str(values[i]), str(values[i] + _pick(rng, (-step, step))), 1
        wrong = _others(rng, [str(v) for v in values], reference)
        explanation = f"The {'point' if line else 'bar'} for {labels[i]} is at {values[i]}."
    elif kind < 0.7:
        order = np.argsort(values)
        highest = rng.random() < 0.5 or not line
        best, second = (order[-1], order[-2]) if highest else (order[0], order[1])
        extreme = "highest" if highest else "lowest"
        question = f"Which {noun} has the {extreme} value?"
        reference, near, steps = labels[best], labels[second], 1
        wrong = _others(rng, labels, reference)
        explanation = f"{labels[best]} is the {extreme} at {values[best]}."
    else:
        a, b = (int(i) for i in rng.choice(n, size=2, replace=False))
        if values[a] < values[b]:
            a, b = b, a
        question = (
            f"By how much did the value change from {labels[b]} to {labels[a]}?"
            if line and b < a
            else f"How much higher is the value of {labels[a]} than that of {labels[b]}?"
        )
        reference, near, steps = str(values[a] - values[b]), str(values[a]), 2
        wrong = (str(values[a] + values[b]), str(values[a] - values[b] + 2 * step))
        explanation = f"{labels[a]} is {values[a]} and {labels[b]} is {values[b]}, so the difference is {reference}."
    perception = (0.0 if annotated else 0.8) + font_hardness(font_px) + 0.1 * (n - 3) + (0.3 if line else 0.0)
    return Task(
        "chart_reading", question, reference, _finish(image, rng, grey=grey), "PNG",
        perception, steps, near, wrong, explanation,
    )


# ---------------------------------------------------------------- scene counting and spatial relations (GQA-like)


def scene_counting(rng: np.random.Generator) -> Task:
    """Shapes scattered over a cluttered background; count them or relate two of them in space."""
    width, height = dr.canvas_size(rng)
    n = int(rng.integers(4, 29))
    blotches = int(rng.integers(0, 26))
    image, background = dr.textured_background((width, height), rng, blotches)
    contrast = float(rng.uniform(0.35, 1.0))
    relative = float(rng.uniform(0.025, 0.1))
    grey = rng.random() < 0.12
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    objects = []
    for _ in range(n):
        shape, colour = _pick(rng, _SHAPES), _pick(rng, _SCENE_COLOURS)
        r = relative * short * rng.uniform(0.8, 1.25)
        x, y = rng.uniform(r, width - r), rng.uniform(r, height - r)
        dr.draw_polygon_shape(draw, shape, x, y, r, fill=dr.blend(dr.COLOURS[colour], background, contrast))
        objects.append((shape, colour, x, y, r))
    noise = float(rng.uniform(4, 24)) if rng.random() < 0.35 else 0.0

    combos = Counter((s, c) for s, c, *_ in objects)
    unique = [o for o in objects if combos[(o[0], o[1])] == 1]
    kind = rng.random()
    steps = 1
    if grey or kind < 0.5 or len(unique) < 2:
        shape, colour, *_ = objects[int(rng.integers(n))]
        if grey:
            count = sum(o[0] == shape for o in objects)
            question = f"How many {shape}s are there in the picture?"
        else:
            count = combos[(shape, colour)]
            question = f"How many {colour} {shape}s are there in the picture?"
        reference, near = str(count), str(count + _pick(rng, (-1, 1))) if count > 1 else str(count + 1)
        wrong = (str(sum(o[0] == shape for o in objects) + 2), str(count + 3))
        explanation = f"I count {_NUMBER_WORDS[count] if count < 10 else count}."
        steps = 1 if count <= 4 else 2
    elif kind < 0.8:
        a, b = _pick(rng, unique, 2)
        horizontal = abs(a[2] - b[2]) >= abs(a[3] - b[3])
        relation = ("to the left of", a[2] < b[2]) if horizontal else ("above", a[3] < b[3])
        question = f"Is the {a[1]} {a[0]} {relation[0]} the {b[1]} {b[0]}?"
        reference, near = ("Yes" if relation[1] else "No"), None
        wrong = ("No" if relation[1] else "Yes",)
        explanation = f"The {a[1]} {a[0]} is {'' if relation[1] else 'not '}{relation[0]} the {b[1]} {b[0]}."
    else:
        anchor = _pick(rng, unique)
        others = sorted((o for o in objects if o is not anchor), key=lambda o: math.dist(o[2:4], anchor[2:4]))
        closest = others[0]
        question = f"What colour is the shape closest to the {anchor[1]} {anchor[0]}?"
        reference = closest[1]
        near = next((o[1] for o in others[1:] if o[1] != reference), None)
        wrong = _others(rng, _SCENE_COLOURS, reference)
        explanation = f"The closest shape is a {closest[1]} {closest[0]}."
        steps = 2
    count_load = 0.1 * int(reference) if reference.isdigit() else 0.0
    perception = (
        n / 12 + size_hardness(relative) + contrast_hardness(contrast) + blotches / 50
        + degradation_hardness(noise, 0.0) + count_load
    )
    return Task(
        "scene_counting", question, reference, _finish(image, rng, grey=grey, noise=noise), "JPEG",
        perception, steps, near, wrong, explanation,
    )


# ---------------------------------------------------------------- reading text in noisy images (VizWiz/OCR-like)

_PRODUCTS = ("OATMEAL", "GREEN TEA", "PASTA", "RICE", "COFFEE", "HONEY", "COCOA", "LENTILS", "SOY MILK", "BARLEY", "QUINOA")
_SIGNS = ("NO PARKING", "EXIT ONLY", "WET FLOOR", "KEEP LEFT", "STAFF ONLY", "BUS STOP", "PUSH", "SLOW DOWN", "OPEN")


def _misread(text: str, rng: np.random.Generator) -> str:
    """``text`` with one letter or digit swapped for a look-alike (a typical OCR error)."""
    swaps = {"O": "0", "0": "8", "1": "7", "7": "1", "I": "L", "E": "F", "S": "5", "5": "6", "B": "8", "8": "3", "A": "R",
             "2": "Z", "3": "8", "4": "9", "6": "5", "9": "4", "T": "I", "N": "M", "C": "G", "R": "P", "L": "I"}
    positions = [i for i, ch in enumerate(text) if ch in swaps]
    if not positions:
        return text[:-1] or "?"
    i = _pick(rng, positions)
    return text[:i] + swaps[text[i]] + text[i + 1:]


def text_reading(rng: np.random.Generator) -> Task:
    """A label or sign on a busy background, possibly small, rotated, blurred, noisy or faint."""
    width, height = dr.canvas_size(rng)
    image, _ = dr.textured_background((width, height), rng, int(rng.integers(5, 30)))
    kind = rng.random()
    if kind < 0.3:
        text, question, field = _pick(rng, _SIGNS), "What does the sign say?", None
        lines = [text]
    else:
        name = _pick(rng, _PRODUCTS)
        field = _pick(rng, ("price", "expiry date", "lot number"))
        detail = {
            "price": f"${int(rng.integers(1, 40))}.{int(rng.integers(0, 100)):02d}",
            "expiry date": f"{int(rng.integers(1, 13)):02d}/{int(rng.integers(25, 32))}",
            "lot number": str(int(rng.integers(1000, 10000))),
        }[field]
        prefix = {"price": "", "expiry date": "EXP ", "lot number": "LOT "}[field]
        lines = [name, prefix + detail]
        if kind < 0.6:
            text, question = name, "What is the product name on this label?"
        else:
            text, question = detail, f"What is the {field} printed on the label?"
    font_px = int(rng.integers(7, 41))
    widest = max(dr.text_width(line, font_px) for line in lines)
    while widest > 0.9 * width and font_px > 7:  # keep the label inside the picture
        font_px -= 1
        widest = max(dr.text_width(line, font_px) for line in lines)
    contrast = float(rng.uniform(0.25, 1.0))
    label_colour = dr.light_colour(rng) if rng.random() < 0.7 else dr.COLOURS[_pick(rng, ("yellow", "orange", "green"))]
    pad = max(4, font_px // 2)
    label = Image.new("RGBA", (widest + 2 * pad, len(lines) * int(font_px * 1.3) + 2 * pad), (*label_colour, 255))
    ink = dr.blend((15, 15, 15), label_colour, contrast)
    label_draw = ImageDraw.Draw(label)
    for i, line in enumerate(lines):
        label_draw.text((pad, pad + i * int(font_px * 1.3)), line, fill=ink, font=dr.font(font_px))
    angle = float(rng.uniform(-25, 25)) if rng.random() < 0.5 else 0.0
    label = label.rotate(angle, expand=True, resample=Image.BICUBIC)
    x = int(rng.integers(0, max(1, width - label.width)))
    y = int(rng.integers(0, max(1, height - label.height)))
    image.paste(label, (x, y), label)
    noise = float(rng.uniform(3, 25)) if rng.random() < 0.6 else 0.0
    blur_radius = float(rng.uniform(0.3, 2.5)) if rng.random() < 0.5 else 0.0
    grey = rng.random() < 0.35

    near = _misread(text, rng)
    if field is None:
        wrong = _others(rng, _SIGNS, text)
    elif text == lines[0]:
        wrong = _others(rng, _PRODUCTS, text)
    else:  # a detail: read the wrong line, or misread twice
        wrong = tuple(w for w in dict.fromkeys((lines[0], _misread(near, rng))) if w != text)
    perception = (
        font_hardness(font_px) + contrast_hardness(contrast) + degradation_hardness(noise, blur_radius)
        + abs(angle) / 50 + len(text) / 40
    )
    return Task(
        "text_reading", question, text, _finish(image, rng, grey=grey, noise=noise, blur=blur_radius), "JPEG",
        perception, 1, near, wrong, f'The text reads "{text}".',
    )


# ---------------------------------------------------------------- multi-step reasoning over a table or diagram (MMMU-Pro-like)

# image, perception, question, reference, near miss, wrong answers, explanation, steps
_Drawn = tuple[Image.Image | None, float, str, str, str | None, tuple[str, ...], str, int]
_GOODS = ("notebook", "pencil", "stapler", "marker", "folder", "ruler", "eraser", "glue stick")
_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana")


def _price_table(rng: np.random.Generator) -> _Drawn:
    rows = int(rng.integers(3, 8))
    goods = _pick(rng, _GOODS, rows)
    prices = [int(p) for p in rng.choice(np.arange(2, 41), size=rows, replace=False)]
    stock = [int(s) for s in rng.integers(1, 30, size=rows)]
    width, height = dr.canvas_size(rng, min_long=320)
    font_px = int(np.clip(min(height / (rows + 2) * 0.55, width / 22) * rng.uniform(0.6, 1.0), 7, 22))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    row_h = int(font_px * 1.8)
    columns = (("Item", 0.06), ("Price ($)", 0.45), ("In stock", 0.72))
    for r, cells in enumerate([[c for c, _ in columns]] + [[g, str(p), str(s)] for g, p, s in zip(goods, prices, stock)]):
        top = 8 + r * row_h
        if r == 0:
            draw.rectangle((4, top, width - 4, top + row_h), fill=(225, 232, 245))
        draw.line((4, top + row_h, width - 4, top + row_h), fill=(160, 160, 160))
        for (_, fraction), cell in zip(columns, cells):
            draw.text((fraction * width, top + (row_h - font_px) / 2), cell, fill="black", font=dr.font(font_px))

    worth = [p * s for p, s in zip(prices, stock)]
    kind = rng.random()
    if kind < 0.45:
        i, j = (int(k) for k in rng.choice(rows, size=2, replace=False))
        qi, qj = (int(q) for q in rng.integers(2, 6, size=2))
        question = f"Using the table, what is the total cost in dollars of buying {qi} {goods[i]}s and {qj} {goods[j]}s?"
        total = qi * prices[i] + qj * prices[j]
        reference, near, steps = str(total), str(qi * prices[i]), 3
        wrong = (str(prices[i] + prices[j]), str(total + prices[j]))
        explanation = f"{qi} × {prices[i]} + {qj} × {prices[j]} = {total}."
    elif kind < 0.75 and worth.count(max(worth)) == 1:  # with a tie, "the item" with the largest value is ill-posed
        best = int(np.argmax(worth))
        question = "Which item has the largest total stock value, that is price times number in stock?"
        reference, steps = goods[best], 2 + rows // 3
        by_stock = goods[int(np.argmax(stock))]
        near = by_stock if by_stock != reference else goods[int(np.argsort(worth)[-2])]
        wrong = _others(rng, goods, reference)
        explanation = f"{goods[best]}: {prices[best]} × {stock[best]} = {worth[best]}, the largest."
    else:
        hi, lo = int(np.argmax(prices)), int(np.argmin(prices))
        question = "How many dollars more does the most expensive item cost than the cheapest one?"
        reference, near, steps = str(prices[hi] - prices[lo]), str(prices[hi]), 3
        wrong = (str(prices[hi] + prices[lo]), str(sorted(prices)[-2] - prices[lo]))
        explanation = f"The {goods[hi]} costs {prices[hi]} and the {goods[lo]} {prices[lo]}: {reference} more."
    perception = font_hardness(font_px) + rows / 15
    return image, perception, question, reference, near, wrong, explanation, steps


def _flow_diagram(rng: np.random.Generator) -> _Drawn:
    start = int(rng.integers(2, 13))
    ops = []
    values = [start]
    for _ in range(int(rng.integers(2, 6))):
        op = _pick(rng, ("+", "-", "x"))  # ASCII: the bundled font has no glyphs for × and −
        k = int(rng.integers(2, 4)) if op == "x" else int(rng.integers(1, 10))
        current = values[-1]
        values.append(current + k if op == "+" else current - k if op == "-" else current * k)
        ops.append(f"{op} {k}")
    boxes = [f"Start: {start}", *ops]
    width, height = dr.canvas_size(rng, min_long=320)
    vertical = height > width
    n = len(boxes)
    span = (height if vertical else width) / n
    font_px = int(np.clip(span / 4 * rng.uniform(0.7, 1.1), 7, 22))
    while not vertical and font_px > 7 and max(dr.text_width(b, font_px) for b in boxes) + 12 > 0.8 * span:
        font_px -= 1
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, label in enumerate(boxes):
        cx, cy = (width / 2, span * (i + 0.5)) if vertical else (span * (i + 0.5), height / 2)
        half_w, half_h = dr.text_width(label, font_px) / 2 + 6, font_px * 0.9
        draw.rectangle((cx - half_w, cy - half_h, cx + half_w, cy + half_h), outline="black", width=2, fill=(245, 245, 220))
        draw.text((cx - half_w + 6, cy - font_px / 2), label, fill="black", font=dr.font(font_px))
        if i + 1 < n:
            if vertical:
                draw.line((cx, cy + half_h, cx, cy + span - half_h), fill="black", width=2)
                draw.polygon([(cx - 4, cy + span - half_h - 6), (cx + 4, cy + span - half_h - 6), (cx, cy + span - half_h)], fill="black")
            else:
                nxt = cx + span - dr.text_width(boxes[i + 1], font_px) / 2 - 6
                draw.line((cx + half_w, cy, nxt, cy), fill="black", width=2)
                draw.polygon([(nxt - 6, cy - 4), (nxt - 6, cy + 4), (nxt, cy)], fill="black")
    question = "Start from the number in the first box and apply each operation in the order of the arrows. What is the final result?"
    reference = str(values[-1])
    wrong = tuple(dict.fromkeys(w for w in (str(values[-1] + int(rng.integers(1, 6))), str(values[0])) if w != reference))
    near = str(values[-2]) if values[-2] != values[-1] else None  # the last operation forgotten
    explanation = " → ".join(str(v) for v in values) + "."
    return image, font_hardness(font_px), question, reference, near, wrong, explanation, len(ops)


def _word_problem(rng: np.random.Generator) -> _Drawn:
    name = _pick(rng, _NAMES)
    if rng.random() < 0.5:
        price, count = int(rng.integers(2, 9)), int(rng.integers(2, 7))
        bill = 50 if price * count > 20 else 20
        question = (f"A bakery sells muffins for ${price} each. {name} buys {count} muffins and pays with a ${bill} bill. "
                    f"How much change, in dollars, does {name} get?")
        answer, partial = bill - price * count, price * count
        explanation = f"{count} × {price} = {partial}, and {bill} − {partial} = {answer}."
    else:
        s1, t1, s2, t2 = (int(v) for v in (rng.integers(40, 121), rng.integers(1, 5), rng.integers(40, 121), rng.integers(1, 5)))
        question = (f"A train travels at {s1} km per hour for {t1} hours and then at {s2} km per hour for {t2} hours. "
                    "How many kilometres does it travel in total?")
        answer, partial = s1 * t1 + s2 * t2, s1 * t1
        explanation = f"{s1} × {t1} + {s2} × {t2} = {answer}."
    near = str(partial) if partial != answer else None
    return None, 0.0, question, str(answer), near, (str(answer + 10), str(partial + 5)), explanation, 3


def table_reasoning(rng: np.random.Generator) -> Task:
    """Multi-step arithmetic over a price table or a flow diagram; about one in five is a text-only word problem."""
    kind = rng.random()
    make = _price_table if kind < 0.55 else _flow_diagram if kind < 0.81 else _word_problem
    image, perception, question, reference, near, wrong, explanation, steps = make(rng)
    if image is not None:
        image = _finish(image, rng, grey=rng.random() < 0.15)
    return Task("table_reasoning", question, reference, image, "PNG", perception, steps, near, wrong, explanation)


# ---------------------------------------------------------------- fine-grained attributes (MMStar-like)

_PATTERNS = ("solid", "striped", "dotted", "checkered")
_ATTRIBUTE_COLOURS = ("red", "green", "blue", "orange", "purple", "pink")  # no brown: it is dark orange


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "circle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 49)]
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r)]
    return [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8), (cx, cy - r)]


def _dashed(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], dash: float, width: int) -> None:
    """A polyline drawn as dashes of length ``dash`` separated by gaps of the same length."""
    walked = 0.0
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        length = math.dist((ax, ay), (bx, by))
        if length == 0:
            continue
        for k in range(int(walked // dash), int((walked + length) // dash) + 1):
            if k % 2:
                continue
            f0 = max(0.0, (k * dash - walked) / length)
            f1 = min(1.0, ((k + 1) * dash - walked) / length)
            if f1 > f0:
                draw.line((ax + (bx - ax) * f0, ay + (by - ay) * f0, ax + (bx - ax) * f1, ay + (by - ay) * f1), fill="black", width=width)
        walked += length


def _pattern_tile(size: int, colour: dr.RGB, pattern: str, spacing: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), colour)
    draw = ImageDraw.Draw(tile)
    ink = tuple(int(c * 0.35) for c in colour)
    if pattern == "striped":
        for x in range(-size, size, spacing):
            draw.line((x, size, x + size, 0), fill=ink, width=max(1, spacing // 3))
    elif pattern == "dotted":
        for x in range(spacing // 2, size, spacing):
            for y in range(spacing // 2, size, spacing):
                draw.ellipse((x - spacing / 5, y - spacing / 5, x + spacing / 5, y + spacing / 5), fill=ink)
    elif pattern == "checkered":
        for x in range(0, size, spacing):
            for y in range(0, size, spacing):
                if (x // spacing + y // spacing) % 2:
                    draw.rectangle((x, y, x + spacing - 1, y + spacing - 1), fill=ink)
    return tile


def fine_attributes(rng: np.random.Generator) -> Task:
    """A few shapes differing in fill pattern, outline, a small inner dot and shade; ask about one detail."""
    width, height = dr.canvas_size(rng)
    image = Image.new("RGB", (width, height), dr.light_colour(rng))
    draw = ImageDraw.Draw(image)
    n = int(rng.integers(2, 8))
    cols = math.ceil(math.sqrt(n * width / height))
    rows = math.ceil(n / cols)
    cell_w, cell_h = width / cols, height / rows
    relative = float(rng.uniform(0.25, 0.42)) * min(cell_w, cell_h) / min(width, height)
    spacing = int(rng.integers(3, 13))
    dot_relative = float(rng.uniform(0.008, 0.05))
    shade_gap = float(rng.uniform(0.08, 0.45))
    short = min(width, height)
    kinds = [(s, c) for s in _SHAPES for c in _ATTRIBUTE_COLOURS]
    chosen = _pick(rng, kinds, n)
    objects = []
    for k, (shape, colour) in enumerate(chosen):
        cx = cell_w * (k % cols + 0.5) + rng.uniform(-0.1, 0.1) * cell_w
        cy = cell_h * (k // cols + 0.5) + rng.uniform(-0.1, 0.1) * cell_h
        r = relative * short
        dark = rng.random() < 0.5
        base = dr.COLOURS[colour]
        fill = tuple(int(c * (1 - shade_gap)) for c in base) if dark else dr.blend(base, (255, 255, 255), 1 - shade_gap)
        pattern = _pick(rng, _PATTERNS)
        size = int(2 * r) + 2
        mask = Image.new("L", (size, size), 0)
        dr.draw_polygon_shape(ImageDraw.Draw(mask), shape, size / 2, size / 2, r, fill=255)
        image.paste(_pattern_tile(size, fill, pattern, spacing), (int(cx - size / 2), int(cy - size / 2)), mask)
        border = _pick(rng, ("solid", "dashed"))
        if border == "solid":
            draw.line(_outline(shape, cx, cy, r), fill="black", width=2)
        else:
            _dashed(draw, _outline(shape, cx, cy, r), dash=max(4.0, r / 4), width=2)
        dot_colour = _pick(rng, ("white", "black", "yellow"))
        dot_r = max(1.0, dot_relative * short)
        draw.ellipse((cx - dot_r, cy - dot_r, cx + dot_r, cy + dot_r), fill=dot_colour)
        objects.append({"shape": shape, "colour": colour, "pattern": pattern, "border": border, "dot": dot_colour, "dark": dark})

    target = objects[int(rng.integers(n))]
    name = f"{target['colour']} {target['shape']}"
    kind = rng.random()
    detail = 0.0
    if kind < 0.35:
        question = f"What pattern fills the {name}?"
        reference = target["pattern"]
        near = {"solid": "striped", "striped": "solid", "dotted": "checkered", "checkered": "dotted"}[reference]
        wrong = _others(rng, _PATTERNS, reference)
        detail = 0.0 if reference == "solid" else max(0.0, (8 - spacing) / 5)
    elif kind < 0.6:
        question = f"What colour is the small dot in the middle of the {name}?"
        reference = target["dot"]
        near = "grey" if reference != "yellow" else "white"
        wrong = _others(rng, ("white", "black", "yellow", "red"), reference)
        detail = size_hardness(dot_relative + 0.02)
    elif kind < 0.8:
        question = f"Is the outline of the {name} solid or dashed?"
        reference = target["border"]
        near, wrong = None, ("dashed" if reference == "solid" else "solid",)
        detail = size_hardness(relative / 2)
    else:
        question = f"Is the {name} a light or a dark shade of {target['colour']}?"
        reference = "dark" if target["dark"] else "light"
        near, wrong = None, ("light" if target["dark"] else "dark",)
        detail = max(0.0, (0.3 - shade_gap) * 5)
    perception = detail + n / 8 + size_hardness(relative)
    explanation = f"Looking closely at the {name}, it is {reference}."
    return Task(
        "fine_attributes", question, reference, _finish(image, rng, grey=False), "PNG",
        perception, 1, near, wrong, explanation,
    )


# ---------------------------------------------------------------- open-ended description (WildVision-like)


def _count_phrase(count: int, noun: str) -> str:
    return f"{_NUMBER_WORDS[count] if count > 1 else 'a'} {noun}{'s' if count > 1 else ''}"


def open_description(rng: np.random.Generator) -> Task:
    """A simple landscape (sky, ground, houses, trees, people, a lake); describe it."""
    width, height = dr.canvas_size(rng)
    time = _pick(rng, ("daytime", "sunset", "night"))
    sky = {"daytime": (135, 195, 240), "sunset": (250, 160, 90), "night": (20, 25, 60)}[time]
    ground_name, ground = _pick(rng, (("grass", (90, 170, 70)), ("sand", (225, 200, 140)), ("snow", (240, 245, 250))))
    image = Image.new("RGB", (width, height), sky)
    draw = ImageDraw.Draw(image)
    horizon = height * rng.uniform(0.45, 0.65)
    draw.rectangle((0, horizon, width, height), fill=ground)
    s = min(width, height)
    sun_x = rng.uniform(0.1, 0.9) * width
    light = (250, 230, 80) if time != "night" else (235, 235, 220)
    draw.ellipse((sun_x - 0.06 * s, 0.08 * s, sun_x + 0.06 * s, 0.2 * s), fill=light)
    lake = rng.random() < 0.35
    if lake:
        lx = rng.uniform(0.1, 0.6) * width
        draw.ellipse((lx, horizon + 0.15 * (height - horizon), lx + 0.35 * width, horizon + 0.45 * (height - horizon)), fill=(60, 120, 200))
    houses = int(rng.integers(0, 4))
    roofs = [_pick(rng, ("red", "blue", "brown", "green")) for _ in range(houses)]
    for roof in roofs:
        hx, hw = rng.uniform(0.05, 0.8) * width, rng.uniform(0.1, 0.18) * s
        base = horizon + rng.uniform(0.05, 0.3) * (height - horizon)
        draw.rectangle((hx, base - hw, hx + hw, base), fill=(235, 225, 200), outline="black")
        draw.polygon([(hx - 0.1 * hw, base - hw), (hx + 1.1 * hw, base - hw), (hx + hw / 2, base - 1.6 * hw)], fill=dr.COLOURS[roof])
    trees = int(rng.integers(0, 5))
    for _ in range(trees):
        tx = rng.uniform(0.03, 0.95) * width
        base = horizon + rng.uniform(0.0, 0.4) * (height - horizon)
        th = rng.uniform(0.12, 0.25) * s
        draw.rectangle((tx - 0.02 * th, base - th * 0.4, tx + 0.02 * th + 2, base), fill=(110, 70, 40))
        draw.ellipse((tx - th * 0.3, base - th, tx + th * 0.3, base - th * 0.35), fill=(30, 120, 40))
    people = int(rng.integers(0, 4)) if houses + trees > 0 else int(rng.integers(1, 4))
    for _ in range(people):
        px = rng.uniform(0.05, 0.95) * width
        base = horizon + rng.uniform(0.3, 0.9) * (height - horizon)
        ph = rng.uniform(0.08, 0.14) * s
        figure = (40, 40, 40) if ground_name != "snow" or time == "night" else (60, 30, 30)
        draw.ellipse((px - ph * 0.1, base - ph, px + ph * 0.1, base - ph * 0.8), fill=figure)
        draw.line((px, base - ph * 0.8, px, base - ph * 0.35), fill=figure, width=2)
        draw.line((px, base - ph * 0.35, px - ph * 0.15, base), fill=figure, width=2)
        draw.line((px, base - ph * 0.35, px + ph * 0.15, base), fill=figure, width=2)
        draw.line((px - ph * 0.2, base - ph * 0.65, px + ph * 0.2, base - ph * 0.65), fill=figure, width=2)
    noise = float(rng.uniform(3, 20)) if rng.random() < 0.3 else 0.0

    parts = []
    if houses:
        parts.append(f"{_count_phrase(houses, 'house')} with {' and '.join(dict.fromkeys(roofs))} roof{'s' if houses > 1 else ''}")
    if trees:
        parts.append(_count_phrase(trees, "tree"))
    if people:
        parts.append(_count_phrase(people, "person") if people == 1 else f"{_NUMBER_WORDS[people]} people")
    if lake:
        parts.append("a small blue lake")
    sky_words = {"daytime": "under a clear blue sky with the sun", "sunset": "under an orange sunset sky", "night": "at night under a dark sky with the moon"}
    lead = {"daytime": "A daytime", "sunset": "An evening", "night": "A night-time"}[time]
    listing = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    reference = f"{lead} landscape on {ground_name} showing {listing}, {sky_words[time]}."
    first = parts[0].split(" with ")[0]
    near = f"{lead} landscape with {first} and some other things in the background."
    wrong = ("A picture with a few coloured shapes.", f"A busy city street with cars {sky_words[_pick(rng, ('daytime', 'night'))]}.")
    question = _pick(rng, ("Describe this image.", "What is happening in this picture? Describe it in detail.",
                           "Write a short caption for this image.", "Can you describe the scene?"))
    perception = len(parts) / 4 + houses / 6 + trees / 8 + degradation_hardness(noise, 0.0)
    return Task(
        "open_description", question, reference, _finish(image, rng, grey=rng.random() < 0.05, noise=noise), "JPEG",
        perception, 1, near, wrong, "", long_answer=True,
    )


# ---------------------------------------------------------------- text-only questions (GSM8K/MMLU-like chat queries)

# question, reference, near miss, wrong answers, explanation, steps
_Worded = tuple[str, str, str | None, tuple[str, ...], str, int]
_COLLECTIONS = ("stickers", "marbles", "stamps", "coins", "postcards", "seashells")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_DAYS = {"January": 31, "February": 28, "March": 31, "April": 30, "May": 31, "June": 30, "July": 31,
               "August": 31, "September": 30, "October": 31, "November": 30, "December": 31}


def _number_wrongs(reference: int, *candidates: int) -> tuple[str, ...]:
    """Distinct positive candidates other than ``reference``, as strings."""
    return tuple(dict.fromkeys(str(c) for c in candidates if c > 0 and c != reference))


def _story_arithmetic(rng: np.random.Generator) -> _Worded:
    """A collection that grows and shrinks over 1–5 steps; a pack purchase (multiply, then add) is two."""
    name, things = _pick(rng, _NAMES), _pick(rng, _COLLECTIONS)
    value = int(rng.integers(5, 40))
    sentences, trail, steps, budget = [f"{name} has {value} {things}."], [str(value)], 0, int(rng.integers(1, 6))
    while steps < budget:
        kind = _pick(rng, ("gain", "lose", "double", "packs") if budget - steps >= 2 else ("gain", "lose", "double"))
        if kind == "gain":
            k = int(rng.integers(2, 30))
            sentence, value, steps = f"Then {name} finds {k} more.", value + k, steps + 1
        elif kind == "lose" and value > 2:
            k = int(rng.integers(1, value))
            sentence, value, steps = f"Then {name} gives {k} to a friend.", value - k, steps + 1
        elif kind == "packs":
            packs, per = int(rng.integers(2, 6)), int(rng.integers(3, 13))
            sentence, value, steps = f"Then {name} buys {packs} packs of {per} {things}.", value + packs * per, steps + 2
        else:  # "double", or "lose" when there is too little to give away
            sentence, value, steps = "Then the number doubles.", 2 * value, steps + 1
        sentences.append(sentence)
        trail.append(str(value))
    question = " ".join(sentences) + f" How many {things} does {name} have now?"
    near = trail[-2] if trail[-2] != trail[-1] else None  # the last step forgotten
    wrong = _number_wrongs(value, value + int(rng.integers(1, 10)), int(trail[0]), 2 * value + 1)
    return question, str(value), near, wrong, " → ".join(trail) + ".", steps


def _unit_conversion(rng: np.random.Generator) -> _Worded:
    """Hours to minutes (1 step), hours and minutes to seconds (3), kilometres and metres to metres (2)."""
    kind = rng.random()
    if kind < 0.35:
        hours = int(rng.integers(2, 13))
        answer = 60 * hours
        return (f"How many minutes are there in {hours} hours?", str(answer), str(answer - 60),
                _number_wrongs(answer, 100 * hours, hours + 60), f"{hours} × 60 = {answer}.", 1)
    if kind < 0.7:
        hours, minutes = int(rng.integers(1, 5)), int(rng.integers(5, 60))
        total_minutes = 60 * hours + minutes
        answer = 60 * total_minutes
        return (f"How many seconds are there in {hours} hours and {minutes} minutes?", str(answer), str(total_minutes),
                _number_wrongs(answer, 3600 * hours + minutes, 100 * (100 * hours + minutes)),
                f"{hours} × 60 + {minutes} = {total_minutes} minutes, × 60 = {answer} seconds.", 3)
    km, metres = int(rng.integers(1, 10)), int(rng.integers(10, 1000))
    answer = 1000 * km + metres
    return (f"A hiking trail is {km} km and {metres} m long. How long is the trail in metres?", str(answer),
            str(100 * km + metres), _number_wrongs(answer, km + metres, 1000 * km),
            f"{km} × 1000 + {metres} = {answer}.", 2)


def _ordering_puzzle(rng: np.random.Generator) -> _Worded:
    """3–5 people compared pairwise in shuffled order; who is at one end (or second from it) of the order?"""
    n = int(rng.integers(3, 6))
    people = _pick(rng, _NAMES, n)  # from oldest to youngest
    facts = [f"{people[i]} is older than {people[i + 1]}." if rng.random() < 0.5 else f"{people[i + 1]} is younger than {people[i]}."
             for i in range(n - 1)]
    facts = [facts[int(i)] for i in rng.permutation(n - 1)]
    oldest, second = rng.random() < 0.5, rng.random() < 0.3
    order = people if oldest else people[::-1]
    rank = 1 if second else 0
    superlative = ("second " if second else "") + ("oldest" if oldest else "youngest")
    question = " ".join(facts) + f" Who is the {superlative}?"
    explanation = "From oldest to youngest: " + ", ".join(people) + "."
    wrong = _others(rng, people, order[rank])
    return question, order[rank], order[1 - rank], wrong, explanation, n - 1 + rank


def _calendar(rng: np.random.Generator) -> _Worded:
    """The weekday in a few days (1 step, 2 past a week), or the days in 2–4 consecutive months (one per month)."""
    if rng.random() < 0.5:
        today, days = int(rng.integers(7)), int(rng.integers(2, 30))
        answer = _WEEKDAYS[(today + days) % 7]
        question = f"If today is {_WEEKDAYS[today]}, what day of the week will it be in {days} days?"
        near = _WEEKDAYS[(today + days + _pick(rng, (-1, 1))) % 7]
        explanation = f"{days} days = {days // 7} weeks and {days % 7} days."
        return question, answer, near, _others(rng, _WEEKDAYS, answer), explanation, 1 + int(days >= 7)
    months = list(_MONTH_DAYS)
    first, n = int(rng.integers(12)), int(rng.integers(2, 5))
    chosen = [months[(first + i) % 12] for i in range(n)]
    answer = sum(_MONTH_DAYS[m] for m in chosen)
    question = "In a year that is not a leap year, how many days are there in " + ", ".join(chosen[:-1]) + f" and {chosen[-1]} together?"
    explanation = " + ".join(str(_MONTH_DAYS[m]) for m in chosen) + f" = {answer}."
    near = str(30 * n) if 30 * n != answer else None
    return question, str(answer), near, _number_wrongs(answer, 31 * n + 1, answer - _MONTH_DAYS[chosen[-1]]), explanation, n


def _sequence(rng: np.random.Generator) -> _Worded:
    """The next term of an arithmetic (1 step), geometric (2) or interleaved (3) sequence."""
    kind = rng.random()
    if kind < 0.4:
        start, step = int(rng.integers(1, 30)), int(rng.integers(2, 12))
        terms, rule, steps = [start + step * i for i in range(5)], f"add {step} each time", 1
        near = terms[-1] + step  # one term too far
    elif kind < 0.7:
        start, ratio = int(rng.integers(1, 6)), int(rng.integers(2, 4))
        terms, rule, steps = [start * ratio**i for i in range(5)], f"multiply by {ratio} each time", 2
        near = 2 * terms[-2] - terms[-3]  # the last difference added again
    else:
        a, b, da, db = (int(v) for v in (rng.integers(1, 20), rng.integers(20, 60), rng.integers(2, 6), rng.integers(-5, -1)))
        terms = [a + da * (i // 2) if i % 2 == 0 else b + db * (i // 2) for i in range(6)]
        rule, steps = f"two interleaved sequences, one adding {da}, the other subtracting {-db}", 3
        near = terms[-2] + da  # the wrong one of the two sequences continued
    shown, answer = terms[:-1], terms[-1]
    question = "What number comes next in the sequence " + ", ".join(map(str, shown)) + "?"
    wrong = _number_wrongs(answer, answer + int(rng.integers(1, 5)), shown[-1] + 1)
    return question, str(answer), str(near) if near != answer else None, wrong, f"The rule: {rule}.", steps


def text_questions(rng: np.random.Generator) -> Task:
    """A text-only question without an image: an arithmetic story, a unit conversion, an ordering puzzle, a
    calendar question or a number sequence; its difficulty is in the steps and the length of the text."""
    make = _pick(rng, (_story_arithmetic, _story_arithmetic, _unit_conversion, _ordering_puzzle, _calendar, _sequence))
    question, reference, near, wrong, explanation, steps = make(rng)
    return Task("text_questions", question, reference, None, "PNG", 0.0, steps, near, wrong, explanation)


FAMILIES: dict[str, tuple[Callable[[np.random.Generator], Task], float]] = {
    "chart_reading": (chart_reading, 0.16),
    "scene_counting": (scene_counting, 0.26),
    "text_reading": (text_reading, 0.18),
    "table_reasoning": (table_reasoning, 0.16),
    "fine_attributes": (fine_attributes, 0.14),
    "open_description": (open_description, 0.10),
    "text_questions": (text_questions, 0.08),
}
"""Each family's renderer and its weight (shares are weights / their sum, 1.08): ``text_questions`` (7.4 %) and
the word problems of ``table_reasoning`` (~19 % of it, ~2.8 %) make about 10 % of the items text-only."""
