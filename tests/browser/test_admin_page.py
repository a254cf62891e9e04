"""The admin page in a real browser against the running system: sign-in, live job
progress, masters, manual creation, settings, permissions, maintenance, upload.
Screenshots of every tab at 1280 and 768 px go to test-artifacts/browser/."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits
from playwright.sync_api import expect

from calib_stack import synthetic
from tests.browser.conftest import AdminPage, dark_files, register_all
from tests.support.bad_frames import brightened
from tests.support.system import ADMIN_TOKEN, unique, wait_for

pytestmark = pytest.mark.browser

CALIBRATION = "/api/v1/calibration"
# big enough that stacking takes a few progress reports; small frames for everything else
BIG_CAMERA = synthetic.Camera(name="ZWO ASI294MM Pro", width=2048, height=1536)
SMALL_CAMERA = synthetic.Camera(name="ZWO ASI183MM Pro", width=64, height=48)


def masters(admin, observatory_id: str) -> list[dict]:
    response = admin.get(f"{CALIBRATION}/library/{observatory_id}", params={"is_master": "true"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def unclaimed(admin, observatory_id: str) -> int:
    response = admin.get(
        f"{CALIBRATION}/library/{observatory_id}",
        params={"is_master": "false", "exclude_mastered": "true"},
    )
    assert response.status_code == 200, response.text
    return response.json()["total"]


def test_sign_in_by_keyboard_keeps_the_token_for_the_tab_and_refuses_a_bad_one(
    admin_page: AdminPage, observatory
):
    page = admin_page.page
    admin_page.open("masters", observatory)
    token = page.get_by_label("Access token")
    expect(token).to_be_focused()
    token.fill("calib_not_a_token")
    token.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")
    admin_page.screenshot("sign-in")

    token.fill(ADMIN_TOKEN)
    token.press("Enter")
    masters_tab = page.get_by_role("tab", name="Masters", exact=True)
    expect(masters_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Observatory", exact=True)).to_have_value(observatory)
    expect(page.locator(".who .role")).to_have_text("server admin")

    # the tabs are reachable by keyboard: arrow keys move between them
    masters_tab.focus()
    masters_tab.press("ArrowRight")
    expect(page.get_by_role("tab", name="Individual Frames")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page).to_have_url(re.compile(rf"#/frames\?obs={observatory}$"))

    # every control of every tab has a label
    labelled = 0
    for name in [
        "Masters",
        "Individual Frames",
        "Needs",
        "Jobs",
        "Settings",
        "Upload master",
        "Maintenance",
    ]:
        admin_page.tab(name)
        panel = page.locator("[role=tabpanel]:not([hidden])")
        controls = panel.locator("input, select")
        for index in range(controls.count()):
            control = controls.nth(index)
            control_id = control.get_attribute("id")
            assert control_id and page.locator(f"label[for='{control_id}']").count() == 1, (
                name,
                control_id,
            )
            labelled += 1
    assert labelled > 25  # filters, settings, upload metadata, maintenance scope

    # the token survives a reload of the tab, and signing out forgets it
    page.reload()
    expect(page.get_by_role("tablist")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Access token")).to_be_visible()


def test_frames_become_a_master_whose_progress_moves_live_then_expand_and_delete(
    admin_page: AdminPage, admin, plugin, observatory
):
    page = admin_page.page
    files = dark_files(
        BIG_CAMERA, 10
    )  # 10 = the default threshold: the registration trigger stacks them
    admin_page.sign_in(tab="jobs", observatory=observatory)
    jobs = page.locator("#panel-jobs")
    expect(jobs.get_by_text("No jobs.")).to_be_visible()
    register_all(plugin, observatory, files)

    # watch the job's bar on the Jobs tab until the job has succeeded
    seen: list[float] = []
    shot = False
    deadline = time.monotonic() + 90
    while not jobs.locator("tr[data-status=succeeded]").count():
        assert time.monotonic() < deadline, f"the job did not finish; progress seen: {seen}"
        bars = jobs.locator("progress[data-job-id]")
        if bars.count():
            value = float(bars.first.get_attribute("value"))
            if not seen or seen[-1] != value:
                seen.append(value)
            if 0 < value < 1 and not shot:
                admin_page.screenshot("jobs-running")
                shot = True
        page.wait_for_timeout(40)
    expect(jobs.locator("tr[data-status=succeeded] .progress-text")).to_have_text("100 %")
    assert any(0 < value < 1 for value in seen), f"no progress between 0 and 1 was shown: {seen}"
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    admin_page.screenshot("jobs")

    master = wait_for(lambda: masters(admin, observatory), timeout_s=30, what="the master")[0]
    admin_page.tab("Masters")
    row = page.locator(f"tr[data-master-id='{master['id']}']")
    expect(row).to_contain_text("dark")
    expect(row).to_contain_text("active")
    expect(row.locator("td.number")).to_have_text("10")
    expect(row.locator("img.thumb")).to_have_class(
        re.compile(r"\bloaded\b")
    )  # the preview PNG arrived
    admin_page.screenshot("masters")

    row.get_by_role("button", name="Components").click()
    expect(page.locator("tr.component")).to_have_count(10)
    expect(page.locator("table.components caption")).to_have_text("10 source frames")
    admin_page.screenshot("masters-components")

    row.get_by_role("button", name="Details", exact=True).click()
    detail = page.get_by_role("dialog")
    expect(detail.locator("pre.fits-header")).to_contain_text("NCOMBINE=                   10")
    expect(detail.locator(".histogram + .hint")).to_contain_text(
        f"{2048 * 1536 // 2:,} pixels (1 in 2 sampled)"
    )
    expect(detail.locator("figure img")).to_have_class(re.compile(r"\bloaded\b"))
    admin_page.screenshot("master-detail")
    detail.get_by_role("button", name="Close").click()
    expect(detail).to_have_count(0)

    row.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("cannot be undone")
    confirm.get_by_role("button", name="Delete master").click()
    expect(row).to_have_count(0)
    expect(page.locator("#panel-masters .status")).to_have_text(f"Master {master['id']} deleted.")
    assert admin.get(f"{CALIBRATION}/frames/{master['id']}").status_code == 404


def test_manual_create_with_force_below_the_threshold(
    admin_page: AdminPage, admin, plugin, observatory
):
    page = admin_page.page
    register_all(plugin, observatory, dark_files(SMALL_CAMERA, 3))
    wait_for(lambda: unclaimed(admin, observatory) == 3, timeout_s=30, what="3 registered darks")

    admin_page.sign_in(tab="needs", observatory=observatory)
    needs = page.locator("#panel-needs")
    expect(needs.get_by_role("progressbar")).to_have_count(1)
    expect(needs).to_contain_text("3 / 10")
    admin_page.screenshot("needs")

    admin_page.tab("Individual Frames")
    group = page.locator("article.group")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("3 / 10 frames")
    expect(group.get_by_role("progressbar")).to_have_attribute("value", "3")
    group.locator("summary").click()
    expect(group.locator("tbody tr")).to_have_count(3)
    admin_page.screenshot("frames")

    group.get_by_role("button", name="Create master (force)").click()
    page.get_by_role("dialog").get_by_role("button", name="Create master").click()
    expect(group.locator(".status")).to_contain_text("Follow it on the Jobs tab")

    master = wait_for(lambda: masters(admin, observatory), timeout_s=60, what="the forced master")[
        0
    ]
    assert master["n_frames"] == 3
    admin_page.tab("Masters")
    expect(page.locator(f"tr[data-master-id='{master['id']}']")).to_contain_text("active")
    admin_page.tab("Individual Frames")
    expect(page.locator("#panel-frames")).to_contain_text("No unclaimed frames.")


def test_lights_show_their_calibration_status(admin_page: AdminPage, admin, plugin, observatory):
    raw, _ = synthetic.light_frame(
        SMALL_CAMERA,
        filter_name="L",
        exposure_s=120.0,
        temperature_c=-10.0,
        rng=np.random.default_rng(9),
    )
    header = synthetic.nina_header(
        frame_type="light",
        camera=SMALL_CAMERA,
        exposure_s=120.0,
        temperature_c=-10.0,
        filter_name="L",
        captured_at=datetime.now(UTC),
    )
    register_all(plugin, observatory, [synthetic.fits_bytes(raw, header)])
    wait_for(lambda: unclaimed(admin, observatory) == 1, timeout_s=30, what="the registered light")

    admin_page.sign_in(tab="frames", observatory=observatory)
    page = admin_page.page
    page.get_by_role("tabpanel", name="Individual Frames").get_by_label("Type").select_option(
        "light"
    )
    group = page.locator("article.group")
    expect(group).to_contain_text("light")
    group.locator("summary").click()
    status = group.locator("td.calibration")
    expect(status).to_have_text("no masters")
    expect(status).to_have_attribute(
        "title", re.compile("^no current master dark matches this light")
    )


def test_a_failed_job_shows_its_error_and_can_be_retried_and_deleted(
    admin_page: AdminPage, admin, plugin, observatory
):
    page = admin_page.page
    odd = synthetic.Camera(
        name=SMALL_CAMERA.name, width=32, height=24
    )  # same configuration, other size
    # without the quality gates, which would hold the odd frame
    put = admin.put(f"{CALIBRATION}/settings/{observatory}", json={"quality_gates_enabled": False})
    assert put.status_code == 200, put.text
    register_all(plugin, observatory, dark_files(SMALL_CAMERA, 2) + dark_files(odd, 1, seed=2))
    wait_for(lambda: unclaimed(admin, observatory) == 3, timeout_s=30, what="3 registered darks")
    created = admin.post(
        f"{CALIBRATION}/masters/create",
        json={
            "observatory_id": observatory,
            "frame_type": "dark",
            "camera_name": SMALL_CAMERA.name,
            "force": True,
        },
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    admin_page.sign_in(tab="jobs", observatory=observatory)
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row).to_have_attribute("data-status", "failed", timeout=60_000)
    error = page.locator("tr.job-problem")
    expect(error).to_contain_text("Error: ")
    expect(error).to_contain_text("32")  # names the odd frame's size
    admin_page.screenshot("jobs-failed")

    row.get_by_role("button", name="Retry").click()
    expect(page.locator("#panel-jobs .status")).to_have_text(f"Job {job_id} queued again.")

    def failed_again():
        job = admin.get(f"{CALIBRATION}/jobs/{observatory}").json()["items"][0]
        return job["status"] == "failed" and job["attempts"] == 2

    wait_for(failed_again, timeout_s=60, what="the retried job to fail again")
    expect(row).to_have_attribute("data-status", "failed")

    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete job").click()
    expect(row).to_have_count(0)
    assert admin.get(f"{CALIBRATION}/jobs/{observatory}").json()["items"] == []


def test_an_out_of_range_setting_shows_the_servers_message_at_the_field(
    admin_page: AdminPage, admin, observatory
):
    page = admin_page.page
    admin_page.sign_in(tab="settings", observatory=observatory)
    field = page.get_by_label("Min frames for master")
    expect(field).to_have_value("10")
    refused = admin.put(
        f"{CALIBRATION}/settings/{observatory}", json={"min_frames_for_master": 500}
    )
    assert refused.status_code == 422

    field.fill("500")
    page.get_by_role("button", name="Save settings").click()
    error = page.locator("[data-setting=min_frames_for_master] .field-error")
    expect(error).to_have_text(refused.json()["detail"])
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(page.locator("[data-setting=sigma_clip_value] .field-error")).to_be_hidden()
    admin_page.screenshot("settings-refused")
    assert admin.get(f"{CALIBRATION}/settings/{observatory}").json()["min_frames_for_master"] == 10

    field.fill("12")
    page.get_by_label("Sigma clip value").fill("2.5")
    page.get_by_label("Stacking method").select_option("median")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".settings .status")).to_have_text("Settings saved.")
    expect(error).to_be_hidden()
    saved = admin.get(f"{CALIBRATION}/settings/{observatory}").json()
    assert (
        saved["min_frames_for_master"],
        saved["sigma_clip_value"],
        saved["stacking_method"],
    ) == (12, 2.5, "median")
    admin_page.screenshot("settings")


def test_an_observatory_admin_sees_no_maintenance_and_cannot_reach_another_observatory(
    admin_page: AdminPage, admin, observatory
):
    page = admin_page.page
    other = unique("obs")
    assert (
        admin.post("/api/v1/admin/observatories", json={"id": other, "name": "Other"}).status_code
        == 201
    )
    created = admin.post(
        "/api/v1/admin/users",
        json={"name": "Olga", "memberships": [{"observatory_id": observatory, "can_admin": True}]},
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]

    admin_page.sign_in(token, observatory=observatory)
    expect(page.locator(".who .role")).not_to_have_text("server admin")
    expect(page.get_by_role("tab")).to_have_text(
        ["Masters", "Individual Frames", "Needs", "Jobs", "Settings", "Upload master"]
    )
    expect(page.locator("#panel-maintenance")).to_have_count(0)
    expect(page.locator("#panel-masters")).to_contain_text(
        "No masters match."
    )  # its own library loads
    expect(page.get_by_label("Observatory", exact=True)).not_to_contain_text(other)
    admin_page.screenshot("observatory-admin")

    admin_page.open("masters", other)
    # refused by the page (not one of the user's observatories) or by the API (403)
    refusal = re.compile(rf"You have no access to observatory '{other}'\.|Not allowed: .*'{other}'")
    expect(page.get_by_text(refusal)).to_be_visible()
    expect(page.locator("#panel-masters tbody tr[data-master-id]")).to_have_count(0)
    assert (
        page.request.get(
            f"{admin_page.base_url}{CALIBRATION}/library/{other}",
            headers={"Authorization": f"Bearer {token}"},
        ).status
        == 403
    )


def test_maintenance_tools_show_their_results_and_the_health_of_everything(
    admin_page: AdminPage, observatory
):
    page = admin_page.page
    admin_page.sign_in(tab="maintenance", observatory=observatory)
    panel = page.locator("#panel-maintenance")
    for title in ["Run expiry check", "Run retention cleanup", "Clear calibrated cache"]:
        card = panel.locator("article", has=page.get_by_role("heading", name=title))
        card.get_by_role("button", name=title).click()
        expect(card.locator(".status")).to_have_text(f"{title}: done.")
        expect(card.locator(".result dl")).to_be_visible()
    health = panel.locator(".health")
    for name in [
        "mongodb",
        "s3",
        "nats",
        "gateway",
        "registry",
        "stacker",
        "scheduler",
        "lifecycle",
    ]:
        expect(health).to_contain_text(name)
    admin_page.screenshot("maintenance")


def test_upload_a_master_with_its_metadata(admin_page: AdminPage, admin, observatory):
    page = admin_page.page
    image = synthetic.bias_frame(SMALL_CAMERA, rng=np.random.default_rng(3)).astype(np.float32)
    header = synthetic.nina_header(
        frame_type="bias",
        camera=SMALL_CAMERA,
        exposure_s=0.0,
        temperature_c=-5.0,
        set_temperature_c=-5.0,
        captured_at=datetime.now(UTC),
    )
    file = io.BytesIO()
    fits.PrimaryHDU(data=image, header=header).writeto(file)
    admin_page.sign_in(tab="upload", observatory=observatory)
    page.get_by_label("Master FITS file").set_input_files(
        files=[
            {"name": "master-bias.fits", "mimeType": "application/fits", "buffer": file.getvalue()}
        ]
    )
    form = page.locator("#panel-upload")
    form.get_by_label("Type").select_option("bias")
    form.get_by_label("Gain").fill("120")
    page.get_by_role("button", name="Upload master").click()
    expect(page.locator("#panel-upload .status")).to_contain_text("stored.")
    admin_page.screenshot("upload")

    # the lifecycle service describes an uploaded master: its details show statistics and preview
    uploaded = masters(admin, observatory)
    wait_for(
        lambda: admin.get(f"{CALIBRATION}/frames/{uploaded[0]['id']}").json()["stats"],
        timeout_s=30,
        what="the uploaded master's statistics",
    )
    page.locator("#panel-upload").get_by_role("button", name="Details").click()
    detail = page.get_by_role("dialog")
    expect(detail.locator("pre.fits-header")).to_contain_text("IMAGETYP= 'BIAS")
    expect(detail.locator(".histogram + .hint")).to_contain_text(f"{64 * 48:,} pixels from")
    expect(detail).to_contain_text("robust std")
    expect(detail).not_to_contain_text("No statistics")
    expect(detail.get_by_role("img", name="Preview of bias master")).to_have_js_property(
        "naturalWidth", 64
    )
    detail.get_by_role("button", name="Close").click()

    assert [(m["frame_type"], m["gain"], m["status"]) for m in uploaded] == [
        ("bias", 120.0, "active")
    ]
    admin_page.tab("Masters")
    expect(page.locator(f"tr[data-master-id='{uploaded[0]['id']}']")).to_contain_text("bias")


def test_held_frames_are_shown_with_their_reasons_previewed_released_and_deleted(
    admin_page: AdminPage, admin, plugin, observatory
):
    put = admin.put(f"{CALIBRATION}/settings/{observatory}", json={"min_frames_for_master": 3})
    assert put.status_code == 200, put.text
    files = dark_files(SMALL_CAMERA, 5)
    # the leak first: whatever the registry's batches, it is in the first job, which holds it
    register_all(plugin, observatory, [brightened(files[3], 3000.0), *files[:3]])
    master = wait_for(lambda: masters(admin, observatory), timeout_s=60, what="the master")[0]
    assert master["n_frames"] == 3
    assert admin.delete(f"{CALIBRATION}/frames/{master['id']}").status_code == 204

    page = admin_page.page
    admin_page.sign_in(tab="frames", observatory=observatory)
    held = page.locator("section.held")
    expect(held.locator("h3")).to_have_text("Held frames (4)")
    rows = held.locator("tr.held-frame")
    expect(rows).to_have_count(4)
    expect(held).to_contain_text(f"source of deleted master {master['id']}")
    expect(held).to_contain_text("dark level gate: median")
    admin_page.screenshot("frames-held")

    leak = next(
        f["id"]
        for f in admin.get(f"{CALIBRATION}/library/{observatory}", params={"held": "true"}).json()[
            "items"
        ]
        if f["held_reason"].startswith("dark level gate")
    )
    held.get_by_role("button", name=f"Preview frame {leak}").click()
    preview = page.get_by_role("dialog")
    expect(preview.locator("figure img")).to_have_class(re.compile(r"\bloaded\b"))
    expect(preview).to_contain_text("Held: dark level gate")
    admin_page.screenshot("frame-preview")
    preview.get_by_role("button", name="Close").click()

    held.get_by_role("button", name=f"Delete frame {leak}").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete frame").click()
    expect(rows).to_have_count(3)
    assert admin.get(f"{CALIBRATION}/frames/{leak}").status_code == 404

    held.get_by_label("Select all held frames").check()
    held.get_by_role("button", name="Release selected").click()
    expect(page.locator("#panel-frames > .status")).to_contain_text("3 frames released")
    expect(held).to_be_hidden()
    back = wait_for(lambda: masters(admin, observatory), timeout_s=60, what="the master back")[0]
    assert sorted(back["components"]) == sorted(master["components"])
