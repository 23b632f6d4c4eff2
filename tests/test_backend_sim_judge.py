"""The simulated judge of ``backend-sim --judge``: recorded answers get their recorded scores, through the real rubric and parser."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from ecvl_router.collect.scoring import parse_score
from ecvl_router.data import load_rsd
from ecvl_router.prompts import load_template, render_prompt
from ecvl_router.serve.backend_sim import JUDGE_MODEL, SimulatedJudge, create_backend_sim_app
from tests.serve_support import ThreadServer, demo_data  # noqa: F401


def test_recorded_answers_get_their_recorded_scores_and_others_the_lowest(demo_data) -> None:
    rsd = load_rsd(demo_data)
    judge = SimulatedJudge.from_dataset(demo_data)
    template = load_template()
    questions = rsd.items.set_index("item_id")
    rng = np.random.default_rng(0)
    responses = rsd.responses.assign(question=lambda r: r["item_id"].map(questions["question"]))
    same_text = responses.groupby(["question", "response"])["score"].transform("mean")
    for row, expected in zip(responses.head(40).itertuples(), same_text.head(40)):
        prompt = render_prompt(template, question=row.question, reference=questions.loc[row.item_id, "reference"], prediction=row.response)
        assert parse_score(judge.answer(prompt, None, rng).text).score == pytest.approx(expected)
    first = questions.iloc[0]
    prompt = render_prompt(template, question=first["question"], reference=None, prediction="An answer nobody recorded.")
    assert parse_score(judge.answer(prompt, None, rng).text).score == rsd.info.score_min


def test_the_judge_is_served_over_the_openai_protocol(demo_data) -> None:
    rsd = load_rsd(demo_data)
    row = rsd.responses.drop_duplicates("response", keep=False).iloc[0]
    item = rsd.items.set_index("item_id").loc[row.item_id]
    prompt = render_prompt(load_template(), question=item["question"], reference=item["reference"], prediction=row.response)
    app = create_backend_sim_app(SimulatedJudge.from_dataset(demo_data), latency_scale=0)
    server = ThreadServer(app).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model=JUDGE_MODEL, messages=[{"role": "user", "content": prompt}])
    finally:
        server.stop()
    assert parse_score(reply.choices[0].message.content).score == pytest.approx(row.score)
