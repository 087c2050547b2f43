"""``geometric`` backend: model-free panoptic labels from registered depth and gravity.

Steps (all in the camera optical frame, meters; the frame is processed at most ``process_width``
pixels wide and the labels are scaled back with nearest-neighbour):

1. back-project depth; per-pixel normals from central differences of the point map (``normal_step_px``
   apart; 3x wider beyond ``far_normal_depth_m`` where depth noise grows), box-smoothed, facing the camera;
2. ``up`` = -gravity. When ``PanopticInput.gravity_camera`` is None, gravity is estimated: starting from
   "camera y axis points down" (up = -y), a mean shift over the pixel normals in shrinking cones
   (60 .. 10 degrees; down-facing normals flipped) converges to the dominant horizontal-surface normal.
   This assumes the camera is within about 60 degrees of upright and that floors / table tops / ceilings
   dominate the horizontal surfaces it sees (on the TUM frames it lands within 0.2-4 degrees of the
   mocap gravity); with a gravity vector (from the pose or an accelerometer) nothing is assumed;
3. horizontal planes from a height histogram (height = point . up): **floor** = the lowest large
   up-facing plane at least ``floor_min_below_camera_m`` below the camera with almost no points below it;
   **ceiling** = the highest large down-facing plane above the camera with almost no points above it.
   Plane membership: point-to-plane distance within ``plane_tolerance_m + plane_tolerance_quadratic z^2``
   (structured-light noise) and a normal within 40 degrees (pixels without a reliable normal join on
   distance alone);
4. **walls**: normal directions from an azimuth histogram of vertical-normal pixels, then plane offsets
   along each refined direction; a large vertical plane with almost no points behind it (it bounds the
   visible space) is a wall, any other (a cabinet front, a box side) is left to the objects; a group of its
   inliers standing clearly in front of it (its median several noise stds in front: a table lamp by a far
   wall, inside the tolerance there) goes to the objects (``_in_front_of_wall``). Inside a
   wall, a region of clearly different color framed by the wall is a **door** (down to the floor,
   >= 1.2 m tall, 0.3-1.4 m wide) or a **window** (>= 0.3 m, above the floor); one framed by other things is
   furniture against the wall (a bookshelf's back) and goes back to the objects (``_doors_windows``).
   A candidate needs a sharp color edge where it meets the wall (``_sharp_outline``): a gradient of lamp
   light over a plain wall crosses the color threshold smoothly and stays wall; "framed" counts only
   pixels with depth (dropouts at furniture edges frame nothing);
5. **horizontal support surfaces**: the remaining up-facing planes, extracted greedily peak by peak;
   each connected region of at least ``support_min_area_m2`` (closer than ``support_max_depth_m``, mostly
   pixels whose own normal points up) becomes an instance of class ``table`` — the label space has no
   generic "support" class, so tables, desks, shelf boards and bed tops are all ``table``
   (``support_class`` changes it). Smaller horizontal pieces (a chair seat, a box top) are left to the
   object stage; surface areas count each pixel's foreshortening (``z^2 / (fx fy) / |n . ray|``);
6. **objects**: depth dropouts inside one surface (speckle on dark or glossy materials, e.g. a desk) are
   filled from their neighbours when those agree in depth (``fill_depth_speckles``; gaps between two depths
   stay open, and planes are found on measured depth only); then the remaining valid pixels are cut at depth
   discontinuities (more than the step the local plane predicts plus ``edge_noise_sigmas`` depth-noise stds of
   the Nguyen model, at most ``edge_depth_ratio`` of z) and at concave creases (where two surfaces meet like a
   box against a sofa; convex box edges do not cut; near range only); small **horizontal up-facing patches**
   (``horizontal_patches``: >= ``patch_min_area_m2``, flat within the depth noise: a cabinet top, a shelf
   board, a box top, a chair seat) are cut out as pieces of their own, and so are box tops seen foreshortened, a
   few rows tall, found from 1-px normals where a solid block lies under them (``foreshortened_tops``,
   ``fine_patch_tops``); the rest splits into 4-connected
   components of at least ``min_object_px``, and one whose front is two fronts one above the other, the upper
   one set back (a box stacked on a bigger box, joined by the boxes' sides), is split between them
   (``split_set_back_fronts``). Cut pixels and tiny fragments join a neighbouring piece; what is
   left of them in 8-connected parts of at least ``thin_min_px`` standing in front of their surroundings is a
   thin piece (a table leg, a lamp pole, a desk top seen edge-on: all depth edge, with no core to grow from;
   ``_thin_pieces``). A piece partly under a small patch and partly beside it, lower, is cut there (the part under
   it carries the patch: a box flush on a bigger box, ``split_patch_carriers``). Then pieces are grouped
   (``join_at_patches``): fragments of one plane a few pixels apart
   (``coplanar_pairs``: a shelf's back seen between its boards) are one piece; next to a patch or support
   surface, a piece below it within its footprint carries it (legs, a cabinet's front, a box's sides) and
   joins it, a piece above it along (almost) a whole side of its footprint rectangle is its rim (a backrest, a
   sofa's arms, a shelf's sides) and joins it, and a piece standing on it (a monitor, a plant, a box on a box,
   books on a board) stays apart; a foreshortened top joins only what carries it, or else what it borders most
   (``join_fine_patches``). What is left of a leg or a lamp's pole (its depth a sparse scatter) is found as
   an upright pole on a floor-plane grid and joins the instance resting on its top (``join_poles``). Each group
   is an instance of class ``object`` (``object_class``, id 20 in the indoor space), or ``table`` when it holds
   a support surface; unlabelled pixels within ``fill_px`` of an object (depth dropouts at its silhouette, dark
   parts) take that object's label;
7. **screens** (``_screens``): dark pixels without depth, opened so thin dark bridges do not join them, form
   blobs; a blob of uniform lightness is a screen (TV / monitor glass, a black sofa return no depth): a new
   ``object`` instance, joined with the thin pieces that frame it (a bezel). Inside walls, a differently
   colored region ringed by depth dropouts (``door_max_ring_dropout``) is a furniture back, not a door or
   window;
8. **colour parts** (``colour_strips``, ``flat_blobs``, ``colour_islands``, :mod:`.geometric_colour`): inside an
   object instance, upright strips of distinct hue standing side by side (books in a row, flush with the shelf
   front: one flat depth block) become instances of their own, and inside any instance so do flat compact blobs
   of another hue (a book lying on a table), then compact islands of one hue in what is left (a box against a
   sofa or in a dark shelf, a plant's foliage on a dark table; not a pot under its foliage nor one face of a
   convex object), then, with the same tests, islands of another colour by Lab distance with lightness at low
   weight (``lab_islands``: a cardboard box in a red-brown shelf, hues too close for two modes), but not an island
   of the chromaticity around it (``island_same_chromaticity``: a shelf's lit back); then upright strips of another,
   more colourful Lab colour (``lab_strips``: a red book in a dark red shelf); textures, large sheets, thin strips
   and pieces of one colour throughout are not cut;
9. **stacked groups** (``join_stacked`` in :mod:`.geometric_grouping`): object instances touching in the image
   whose floor footprints coincide (IoU >= ``stack_min_footprint_iou``) and that lie one above the other are
   one object (a bookshelf's compartments, cut apart by its boards), but not two set-back fronts split in step 6;
   then so are two one above the other of one width along their common long axis (``stack_min_width_iou``:
   compartments whose footprint rectangles turned with the noise), and a tall thin piece standing at the end of a
   wide one and spanning its heights (``side_panel_min_height_m``: a shelf's side panel seen along its depth), and
   a piece seen through the frame of a taller one of its chromaticity (``nested_max_chromaticity``: compartments
   behind a shelf's front); a colour part joins none but what it was cut from;
10. **colour growth** (``grow_by_colour`` in :mod:`.geometric_colour`): the pixels that step 6 gave to the
   nearest object by distance (``fill_px``; they shaped the colour parts) are given back, except inside
   colour parts, and object instances grow into the unlabelled pixels of their own colour (Lab distance <
   ``colour_growth_delta`` to the neighbour they grow from and < ``colour_growth_mean_delta`` to their mean
   colour, no wall or floor neighbour nearer in colour, at most ``colour_growth_max_ratio`` times their
   size): a table's dark legs and a lamp's pole, whose depth drops out, join the top or the shade, and a
   dropout at a silhouette goes to the object whose colour it has, not to the nearest; then any unlabelled
   region framed (>= ``wall_hole_frame``) by wall is wall (``_wall_holes``);
11. **unlabelled colour parts** (``unlabelled_colour_parts`` in :mod:`.geometric_colour`): in what is still
   unlabelled, compact parts of one hue (``unlabelled_parts_*``) become objects: books in a dark shelf, or lying
   flat on a far desk, whose depth drops out; not a part of the colour of the wall / floor around it, nor one
   reaching the rows and columns without depth round a real sensor's image; then compact pale parts, lighter and
   of another colour than what rings their region (``pale_parts``: a far desk lamp's cream shade, too unsaturated
   for a hue);
12. **depthless joins** (``join_depthless`` in :mod:`.geometric_colour`): touching object instances of one colour
   (median Lab within ``depthless_join_max_delta``, not black) of which one has depth on at most
   ``depthless_join_max_depth_fraction`` of its pixels are one: a far desk's top and its dark legs, grown or found
   by colour as separate instances, with no depth to say they are apart; parts cut out for their colour are left
   alone;
13. **late poles** (``pole_late_pass``): poles are found again (as in step 6) among the pixels with depth that
   no instance holds, walls included (a metal leg in front of a grey wall is taken as wall), and join the
   instance resting on them, which may be one the colour stages made (a far desk's top);
14. **leg bars** (``claim_leg_bars`` in :mod:`.geometric_legs`): below an instance that floats (its lowest points
   clear of the floor), narrow upright bars of colour contrast that no instance holds, touching it and reaching
   a good part of the way to the floor, are its legs (a far table's dark legs taken by the wall or floor planes,
   whose tolerance grows with z^2, or left without depth) and join it; then poles are traced down from small
   floating objects and the pale parts (``trace_poles``: a desk lamp's pole, too short for a leg bar, maybe in
   front of a screen);
15. **legs and tops** (``join_legs_and_tops`` in :mod:`.geometric_legs`): a slender piece reaching from near the floor
   up to a thin top, inside the top's footprint, joins it, and two pieces whose tops are at one height, both mostly
   without depth, whose gap in the image holds nothing behind them (depth holes, or a chair or a lamp in front:
   a far desk's top, a screen) are one, and so are a table's "frames" (legs and a stretch of apron in one piece)
   whose top slabs meet; the instance holding a foreshortened box top (step 6) is neither a leg piece nor a frame.
   Everything else without a label is unknown (0).

Limits (see ``benchmarks/bench_panoptic.py`` for numbers): objects with little depth (thin lamp poles, metal table
legs, desks seen edge-on whose depth drops out at their edges) are missed or cut; touching objects at the same depth
merge unless colour parts them (not books of one colour side by side, nor a box on a shelf board next to wood of its
hue; cutting at every colour edge was tried and shatters striped objects: people, bed covers, the books themselves);
on real frames the strips also cut a coloured upright edge off an object (the wooden rim of an opened case in one of
the sampled TUM frames) and the islands a coloured part (of a pen holder, a strip of a door); a patch's rim rule can
take in an object standing along a whole side of a small support; a person's arm in front of the body is cut off it;
the unlabelled colour parts also take a coloured spot without depth that is no object (by a drawer's handle, at a
monitor's edge: 2 parts in 50 real frames), and a vertical edge (of a whiteboard, a wall) can pass for a pole under
a piece at its top (3DMatch and ICL frames); the depthless joins can join two things of one colour that touch where
one of them has little depth (a far table and a shelf of its wood beside it); doors / windows are only found when
their color differs and they have an edge against the wall; a leg bar is found only where the leg's colour differs
from what is behind it (not a grey metal leg against a grey wall), and two tables of one height standing apart with
a chair in front of the gap between them, both mostly without depth, would be joined as one.

Code layout: steps 1-2 (normals, speckle fill, up estimate) are in :mod:`.geometric_depth`, the grouping of
step 6 (patches, coplanar fragments, joins at patches) in :mod:`.geometric_grouping`; this module holds the
configuration, the plane stages, the object cuts and the hole filling, and re-exports ``depth_normals``,
``estimate_up`` and ``fill_depth_speckles``; steps 8, 10 (the growth), 11 and 12 are in
:mod:`.geometric_colour`, step 9 in :mod:`.geometric_grouping`, steps 14 and 15 in :mod:`.geometric_legs`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..camera import PinholeCamera
from ..depth_confidence import nguyen_sigma_m
from ..labels import LabelSpace
from .geometric_colour import (FrameColour, grow_by_colour, join_depthless, pale_parts, split_colour,
                               unlabelled_colour_parts)
from .geometric_depth import creases, depth_normals, estimate_up, fill_depth_speckles, norm3
from .geometric_grouping import (colour_part_apart, component_crops, coplanar_pairs, horizontal_patches,
                                 fast_median, foreshortened_tops, join_at_patches, join_fine_patches, join_nested,
                                 join_poles, join_stacked, percentiles, split_patch_carriers, split_set_back_fronts,
                                 stats_box)
from .geometric_legs import claim_leg_bars, join_legs_and_tops, trace_poles
from .types import PanopticInput, PanopticResult, validate_input

__all__ = ["GeometricConfig", "GeometricBackend", "estimate_up", "depth_normals", "fill_depth_speckles"]


@dataclass(frozen=True)
class GeometricConfig:
    process_width: int = 320
    """Frames wider than this are downscaled (nearest) for processing; labels are scaled back."""
    max_depth_m: float = 8.0
    normal_step_px: int = 2
    normal_smooth_px: int = 5
    horizontal_deg: float = 20.0
    """A normal within this of up (or down) is horizontal-plane material."""
    vertical_deg: float = 20.0
    """A normal within this of the horizon is vertical-plane material."""
    plane_tolerance_m: float = 0.02
    plane_tolerance_quadratic: float = 0.008
    """Point-to-plane tolerance ``plane_tolerance_m + plane_tolerance_quadratic * z^2`` (structured-light
    depth noise and quantization grow with z^2)."""
    far_normal_depth_m: float = 2.0
    """Beyond this depth normals come from a 3x wider stencil (noise would swamp the narrow one)."""
    plane_min_fraction: float = 0.02
    """A plane needs at least this fraction of the valid pixels to be floor, ceiling or wall."""
    floor_min_below_camera_m: float = 0.3
    outside_max_fraction: float = 0.02
    """A floor / ceiling / wall may have at most this fraction of valid points beyond it."""
    outside_margin_m: float = 0.10
    """Points count as beyond a plane when farther than ``outside_margin_m + 0.01 z^2``."""
    support_min_area_m2: float = 0.4
    """Surface area (foreshortening counted) a horizontal region needs to be a support surface (a table);
    smaller ones are patches of the object stage (0.4: a 0.5 m box top or the top of tum_fr3_cabinet stays an
    object, the desks of tum_fr1_desk are supports)."""
    support_max_depth_m: float = 4.0
    """Support surfaces are looked for closer than this (farther, normals are too noisy)."""
    min_object_px: int = 30
    """At 320 px width; scaled with the processed image area."""
    edge_depth_ratio: float = 0.04
    """Neighbouring pixels whose depths differ by more than this fraction (+ 1 cm) are not connected."""
    edge_noise_sigmas: float = 3.0
    """Where normals are reliable, neighbours are also cut when their depths differ by more than the step
    the local plane predicts plus this many depth-noise stds of the pair (``nguyen_sigma_m``; 0 keeps only
    ``edge_depth_ratio``). On tum_fr1_desk_9 it keeps the monitor and a book off the desk. 3 rather than 4
    (``benchmarks/sweep_geometric.py``, 2026-11-27): boxes and plants a few cm in front of what they stand
    against are cut off it (+3 / +1 / +2 objects on the seed groups 5, 6, 11 / 12-14 / 7-9; 2.5 the same, 2.2
    cuts objects apart: 13 gained, 8 lost)."""
    concave_threshold: float = 0.15
    """Cut objects at concave creases stronger than this (0 disables); see ``_concave_edges``."""
    concave_max_depth_m: float = 3.0
    """... only closer than this: farther, noisy normals would shatter objects into crumbs."""
    patch_min_area_m2: float = 0.03
    """Horizontal up-facing patches of object material at least this large separate what stands on
    them from what carries them (``horizontal_patches``, ``join_at_patches``; 0 disables)."""
    patch_step_sigmas: float = 3.0
    """A height step of more than this many depth-noise stds (Nguyen model) between neighbours ends a
    patch; things higher than the patch by as much (at least 2 cm) are above it."""
    patch_below_fraction: float = 0.8
    """A piece with at least this fraction of its points not above a patch is below it."""
    patch_footprint_margin_m: float = 0.04
    """The patch's footprint rectangle is grown by this to tell what touches it."""
    patch_rim_coverage: float = 0.9
    """A piece standing on a patch's edge that runs along at least this fraction of that side is part of
    the patch's object (a backrest); a shorter one stands on it."""
    patch_carrier_split: bool = True
    """A piece lying partly under a small patch and partly beside it, lower, is two things: the part under the
    patch carries it, the rest stays apart (a box standing flush on a bigger one;
    ``geometric_grouping.split_patch_carriers``)."""
    fine_patch_tops: bool = True
    """Box tops seen foreshortened, a few rows tall, are patches too: found from 1-px normals where a solid block
    lies under them (``geometric_grouping.foreshortened_tops``); only what carries such a top joins it
    (``join_fine_patches``), and the instance holding it is neither a table's leg piece nor a frame in step 15."""
    fine_patch_below_px: int = 6
    """... the block is looked for this many rows (at 320 px width) under the top's lowest pixel in each column,"""
    fine_patch_block_min_m: float = 0.08
    """... or this far below at its depth, whichever is more (a side table's apron under its top is no block: on the
    3DMatch study room its top passed at 6 rows; the simulator's gains hold from 0.04 to 0.2 m),"""
    fine_patch_solid_fraction: float = 0.8
    """... and must be there under at least this fraction of its columns."""
    coplanar_gap_px: int = 4
    """Pieces that are fragments of one plane less than this many pixels apart (at processing resolution)
    are merged (``coplanar_pairs``; 0 disables)."""
    coplanar_max_deg: float = 10.0
    pole_cell_m: float = 0.03
    """Upright poles (a table's legs, a lamp's pole: depth all edge, left a sparse scatter) are found on a floor-plane
    grid of cells this wide and joined to what rests on them (``geometric_grouping.join_poles``; 0 disables;
    needs a floor)."""
    pole_min_points: int = 8
    pole_min_span_m: float = 0.25
    """A pole cell's 3x3 neighbourhood holds at least ``pole_min_points`` points spanning this much height."""
    pole_max_width_m: float = 0.10
    """A pole is at most this wide on the floor plane (5-95 %)."""
    pole_join_height_m: float = 0.10
    """A pole joins an instance whose lowest points (5 %) are within this of its top (95 %) ..."""
    pole_footprint_margin_m: float = 0.10
    """... and whose footprint rectangle, grown by this, holds it."""
    pole_late_pass: bool = True
    """Poles are found again after the colour stages, among all pixels with depth that no instance holds (a metal
    leg in front of a grey wall taken as wall), to join instances only those stages made (a far desk's top grown
    by colour, its depth mostly dropped out: at the first pass there was no instance on the legs' top)."""
    leg_bar_min_contrast: float = 22.0
    """Step 14 (``geometric_legs.claim_leg_bars``): below an instance that floats, narrow upright bars of at least
    this colour contrast to both sides (OpenCV 8-bit Lab distance, averaged along the bar) that no instance holds
    are its legs (taken by the wall or floor planes, or without depth) and join it. 0 disables; needs the color
    image and a floor. 22 rather than 18 or 20: the same tables, without a plant's pot taking a wall strip."""
    leg_bar_min_clearance_m: float = 0.25
    """... an instance floats when its lowest points (5 %) are this far above the floor"""
    leg_bar_max_width_m: float = 0.15
    """... a bar is on average at most this wide (at the instance's depth)"""
    leg_bar_min_span: float = 0.5
    """... and at least this fraction of the instance's height above the floor tall (in pixels at its depth)."""
    top_joins: bool = True
    """Step 15 (``geometric_legs.join_legs_and_tops``): a slender piece reaching from the floor up to a thin top
    inside its footprint joins it, and two pieces whose tops are at one height, cut apart by depth holes or by
    something in front, are one. Needs a floor."""
    top_max_thickness_m: float = 0.12
    """... a top's points span at most this in height (5-95 %)"""
    leg_piece_max_width_m: float = 0.35
    """... a leg piece's footprint rectangle is at most this long"""
    top_gap_max_depth_fraction: float = 0.5
    """... two pieces of one top both have depth on at most this fraction of their pixels (where depth is dense,
    its cuts stand: papers on a real desk stay apart from it; at 1.0 they join, 0 disables the join)."""
    setback_min_step_m: float = 0.05
    """A piece whose front is two fronts at least this far apart, one above the other, the upper one set back (a box
    on a bigger box) is split between them (``geometric_grouping.split_set_back_fronts``; 0 disables) ..."""
    setback_max_step_m: float = 0.35
    """... when the upper one is at most this far behind (a sofa's backrest is 50-60 cm behind its seat's front) ..."""
    setback_min_share: float = 0.15
    setback_max_height_overlap: float = 0.3
    """... each holds this share of the front, and their heights (10-90 %) overlap by at most this of the shorter."""
    setback_min_px: int = 40
    """Pieces with fewer front pixels with a reliable normal (at 320x240) are not looked at."""
    grow_iterations: int = 3
    """Pixels of object material left between components (cuts, tiny fragments) join a neighbour
    component within this many 3x3 dilation steps."""
    thin_min_px: int = 30
    """Object material still unlabelled after growing (structures a few pixels wide, all depth edge: a
    table leg, a lamp pole, a desk top seen edge-on) forms pieces of its own when a connected part has at
    least this many pixels (at 320x240; 0 disables) and stands out in front of its surroundings."""
    thin_min_step_m: float = 0.05
    """How far in front a thin piece stands: its median depth at least this much nearer than the median of
    the valid pixels around it, meters (the line where a wall meets the floor is at its surroundings' depth)."""
    stack_min_footprint_iou: float = 0.6
    """Groups touching in the image whose floor footprints (minimum-area rectangles) overlap by at least this
    IoU and whose height ranges overlap by less than ``stack_max_height_overlap`` of the shorter are one
    object stacked on one outline (a bookshelf's compartments; ``geometric_grouping.join_stacked``; 0
    disables)."""
    stack_max_height_overlap: float = 0.5
    stack_min_px: int = 80
    """Groups with fewer pixels with depth (at 320x240) are left out of the stacking test."""
    stack_min_width_iou: float = 0.9
    """Step 9's second pass (``geometric_grouping._join_by_outline``): groups one above the other whose extents
    along their common long axis overlap by at least this IoU are one (a shelf's compartments of one width, whose
    footprint rectangles turn with depth noise; 0.75 joined a box under a table of its width). 0 disables."""
    side_panel_min_height_m: float = 0.8
    """... and a piece at least this tall, thin along a wide piece's long axis and standing at its end, spanning
    its heights, is its side panel (seen along its depth, cut off by the step at its front edge). 0 disables."""
    nested_max_chromaticity: float = 0.015
    """Step 9's third pass (``geometric_grouping.join_nested``): a piece seen through the frame of a taller one
    (a shelf's compartments behind its front frame or side panel) joins it when their median chromaticities
    ((r, g, b) / (r + g + b)) differ by less than this (L1; a box in a shelf: >= 0.04). 0 disables."""
    colour_strips: bool = True
    """Cut upright strips of distinct colour out of object instances (books in a row flush with the shelf
    front: no depth step parts them; ``geometric_colour.split_colour``). Needs the color image."""
    strip_min_px: int = 12
    """A strip has at least this many pixels (at 320x240); a hue mode needs as many saturated pixels."""
    strip_saturation_min: int = 90
    """HSV saturation (0-255) from which a pixel's hue counts."""
    strip_saturated_fraction: float = 0.25
    """At least this fraction of a strip's pixels are saturated themselves (not only filled from neighbours)."""
    strip_vivid_saturation: float = 152.0
    """Yellow books stand in light-wood shelves within 8 degrees of hue of the wood (one hue mode), but far more
    saturated (HSV saturation ~170-210 against ~110-140). For the strips, a hue mode of an instance whose
    saturated pixels are split by this saturation into a vivid part (>= ``strip_vivid_min_fraction`` of them)
    and a plain one (>= ``strip_plain_min_fraction``), with few near the bound, is two modes
    (``geometric_colour._split_by_saturation``). 0 disables."""
    strip_vivid_min_fraction: float = 0.1
    strip_plain_min_fraction: float = 0.6
    """The plain part must dominate: a book's own lit band (a third of its pixels, less saturated) is no second
    mode (without this bound books were cut along their shading: -44 books on the seed groups)."""
    strip_mode_separation_bins: int = 3
    """For the strips only, hue modes are at least this many 10-degree bins apart (the flat blobs and islands keep
    4): a yellow book beside an orange or red one is 30-35 degrees away, one mode at 4 (+10 books on the seed
    groups chosen on; 3 everywhere cut desk tops of two wood shades into flat blobs)."""
    strip_max_width_m: float = 0.25
    strip_min_height_m: float = 0.10
    strip_max_height_m: float = 0.32
    """A strip is at most ``strip_max_width_m`` wide (its mean width in pixels at its median depth) and spans
    ``strip_min_height_m`` to ``strip_max_height_m`` along up (5-95 % of its points' heights), meters, and is
    at least as tall as wide in the image: small upright things standing in a row."""
    strip_dark_value_min: int = 45
    """For the strips only, saturated pixels as dark as this HSV value (below the 60 from which hue counts
    elsewhere) have a hue too: a dark purple or blue book took its yellow neighbour's mode (+13 books on the seed
    groups chosen on); not the hue of a dark material that fills a good part of the instance's bounding box
    (dark wood: ``geometric_colour._dark_hues``). 0 disables."""
    lab_strips: bool = True
    """After the other colour parts, strips of another colour by Lab distance (lightness weighted by
    ``lab_island_lightness_weight``) in what is left of each strip candidate: a red book in a dark red shelf, a
    yellow one in light wood (hues within a mode of the shelf's), a row of books of several hues each unlike the
    shelf's (``geometric_colour._lab_strips``)."""
    lab_strip_distance: float = 5.0
    lab_strip_chromatic_distance: float = 8.0
    lab_strip_max_fraction: float = 0.2
    """A Lab strip candidate: a 4-connected part of the pixels farther than ``lab_strip_distance`` from the
    instance's median Lab colour, at most ``lab_strip_max_fraction`` of the instance, whose median a*b* lies at
    least ``lab_strip_chromatic_distance`` from the instance's and farther from grey (a white stripe on a blue
    shirt is less colourful than the shirt, a book more than its shelf), then held to the strips' shape tests."""
    flat_blobs: bool = True
    """Cut flat blobs of distinct colour out of instances (a book lying on a table: no depth step; hue modes as
    for the strips; ``geometric_colour.split_colour``). Needs the color image."""
    flat_max_thickness_m: float = 0.06
    flat_min_area_m2: float = 0.01
    flat_max_area_m2: float = 0.15
    flat_min_solidity: float = 0.75
    """A flat blob spans at most ``flat_max_thickness_m`` along gravity, covers ``flat_min_area_m2`` to
    ``flat_max_area_m2`` on the floor plane and fills at least this fraction of its convex hull."""
    flat_own_min_fraction: float = 0.5
    """An instance's commonest hue mode is its own colour (never a flat blob) only when its parts cover at least
    this fraction of it: a red book lying on a grey cabinet is the only coloured thing there."""
    colour_islands: bool = True
    """Cut compact islands of one hue out of instances, after the strips and blobs (a box in a shelf's
    compartment or against a sofa, a plant's foliage on a side table: no depth step; ``geometric_colour``).
    Needs the color image."""
    island_min_size_m: float = 0.10
    island_max_size_m: float = 1.2
    """An island's floor footprint (longer side of the minimum-area rectangle) spans this range, meters."""
    island_min_height_m: float = 0.05
    island_max_height_m: float = 1.2
    """... and its points span this range along gravity (5-95 %), meters: a flat one is a blob's business."""
    island_min_solidity: float = 0.85
    """An island fills at least this fraction of its convex hull (boxes, foliage; not a pattern's stroke)."""
    island_max_fraction: float = 0.5
    """An island is at most this fraction of its instance's pixels."""
    island_own_fraction: float = 0.5
    """At least this fraction of an island's pixels are saturated themselves (not filled from neighbours)."""
    island_max_rest_above: float = 0.9
    """No island when at least this fraction of the rest of the instance lies above the island's top (a pot
    under its foliage is one plant with it)."""
    island_max_convex_ratio: float = 2.0
    """No island when convex creases outnumber concave ones along its outline by this factor: it is a face
    of one object, folded round a convex edge (a cabinet's lit front), not something standing against it."""
    lab_islands: bool = True
    """After the hue islands, cut islands of another colour by Lab distance (a tan box in a dark red-brown shelf,
    a dark green plant on a dark table: hues too close or too dark for a mode; ``geometric_colour``), with the
    same shape tests as the hue islands. Needs the color image and ``colour_islands``."""
    lab_island_distance: float = 6.0
    lab_island_lightness_weight: float = 0.2
    """A pixel is of another colour than its instance when farther than ``lab_island_distance`` from the
    instance's median Lab colour, lightness (0-100) weighted by ``lab_island_lightness_weight``: a lit and a
    shaded face of one object differ mostly in lightness (the side of tum_fr3_cabinet's cabinet)."""
    lab_island_chromatic_distance: float = 8.0
    lab_island_chromatic_min_solidity: float = 0.77
    """A Lab island whose median a*b* lies at least ``lab_island_chromatic_distance`` from its instance's is another
    material (light and shade change mostly lightness) and needs to fill only this fraction of its convex hull: a
    conical plant's foliage on a dark table has a ragged outline."""
    lab_island_min_px: int = 96
    lab_island_min_radius_px: float = 4.0
    """A Lab island has at least this many pixels (at 320x240) and fits a disc of this radius (at 320 px width):
    not a lit edge strip (the top of a monitor)."""
    island_same_chromaticity: float = 0.012
    """No island (hue or Lab) whose median chromaticity ((r, g, b) / (r + g + b)) lies within this L1 distance of
    that of its instance's pixels around it: light and shade on one material (a shelf's lit back or shaded side
    panel: < 0.02), not another material (a box in a shelf: >= 0.028); not tested against grey surroundings
    (``geometric_grouping.is_grey``). 0 disables."""
    fill_px: float = 4.0
    """Unlabelled pixels (no depth, tiny fragments) take the nearest object instance within this many pixels
    (at 320 px width; 0 disables). An extrapolation for the 2D output: depth-less pixels are not mapped."""
    max_planes: int = 8
    doors_windows: bool = True
    """Find door / window regions in walls by color (see ``_doors_windows``)."""
    door_color_distance: float = 20.0
    """Lab distance from the wall's median color that makes a pixel a door / window candidate."""
    furniture_back_color_distance: float = 12.0
    """A region of a wall plane farther than this (but within ``door_color_distance``) from the walls' colour,
    ringed by depth dropouts and hardly by wall, is a bookshelf's back and goes to the objects
    (``GeometricBackend._furniture_backs``; a brown back against a grey-brown wall). 0 disables."""
    door_edge_contrast: float = 10.0
    """... and the median local Lab color change (weighted the same way, over 2 px) along its outline
    against the wall that makes it a panel with an edge rather than a gradient of light
    (``_sharp_outline``; 0 disables the test)."""
    door_min_wall_frame: float = 0.5
    """A candidate needs at least this fraction of the valid pixels around it to be wall or floor; one
    framed by other things is the back of furniture against the wall and goes to the objects."""
    door_max_ring_dropout: float = 0.4
    """A candidate whose surrounding ring (3 px) has more than this fraction of depth dropouts is framed by
    depth edges (furniture in front of the wall around it) and is released from the wall (above 1
    disables)."""
    door_lightness_weight: float = 0.5
    """Weight of the L (lightness) difference in that distance, relative to a and b."""
    wall_front_sigmas: float = 2.5
    """A group of a wall plane's inliers standing in front of it (connected pixels more than one depth-noise std
    in front) whose median offset is more than this many stds (Nguyen model) and at least
    ``wall_front_min_m`` is an object near the wall, not wall: the plane tolerance grows with z^2 (18 cm at
    4.5 m) and took in table lamps on a desk against a far wall (``_in_front_of_wall``; 0 disables)."""
    wall_front_min_m: float = 0.05
    wall_front_min_px: int = 20
    """... and such a group has at least this many pixels (at 320x240)."""
    colour_growth_delta: float = 6.4
    """Object instances grow into unlabelled pixels of their colour (Lab distance below this to a neighbour
    of the instance, and no nearer stuff neighbour; ``geometric_colour.grow_by_colour``): a table's legs or a
    lamp's pole, whose depth drops out. 0 disables; needs the color image. 6.4 rather than 8 (the sweep of
    2026-11-27): a table or shelf grew over the edge of its neighbour of a close colour (+1 / +2 / +2 objects
    with ``edge_noise_sigmas`` 3; 6.0-6.8 within one object of that, 5.6 and 9.2 lower)."""
    colour_growth_px: int = 40
    """... at most this many pixels from where the instance was (at 320 px width)."""
    colour_growth_mean_delta: float = 20.0
    """... and a pixel it takes lies within this Lab distance of the instance's mean colour (a book's mixed edge
    pixels must not lead it into the table it lies on)."""
    colour_growth_max_ratio: float = 2.0
    """... and by at most this many times its own pixel count."""
    unlabelled_parts: bool = True
    """Parts of one hue in what is left unlabelled become object instances (books in a dark shelf or lying flat on
    a far desk, whose depth drops out; ``geometric_colour.unlabelled_colour_parts``). Needs the color image."""
    unlabelled_parts_min_px: int = 24
    unlabelled_parts_max_px: int = 3000
    """... with this many pixels (at 320x240)"""
    unlabelled_parts_min_solidity: float = 0.6
    """... filling this fraction of their convex hull"""
    unlabelled_parts_stuff_distance: float = 10.0
    """... and farther than this (Lab) in mean colour from the wall / floor / ceiling pixels around them."""
    pale_parts: bool = True
    """Step 11 also makes objects of pale parts of what is still unlabelled (``geometric_colour.pale_parts``: a far
    desk lamp's cream shade, too unsaturated for a hue, keeping depth on a third of its pixels)."""
    pale_parts_min_delta: float = 8.0
    """... a part's mean colour lies at least this far (Lab) from the ring around its region, and not darker."""
    pale_parts_max_px: int = 600
    """... and it has at most this many pixels (at 320x240; at least ``unlabelled_parts_min_px``)."""
    pole_trace_min_contrast: float = 15.0
    """Step 14 then traces a pole down from small floating objects and pale parts (``geometric_legs.trace_poles``:
    a desk lamp's pole, too short for a leg bar, maybe in front of a screen) over pixels of at least this
    ``bar_contrast``. 0 disables; runs with the leg bars (``leg_bar_min_contrast`` > 0) and needs a floor."""
    depthless_join: bool = True
    """Touching object instances of one colour join when one of them has little depth (a far desk's top and its
    legs, whose depth dropped out; ``geometric_colour.join_depthless``), after every other stage. Needs the color
    image."""
    depthless_join_max_depth_fraction: float = 0.3
    """... one of the two has depth on at most this fraction of its pixels"""
    depthless_join_max_delta: float = 6.0
    """... their median Lab colours (lightness 0-100) lie within this distance"""
    depthless_join_min_lightness: float = 10.0
    """... both are at least this light (Lab lightness 0-100; black and dark grey things all look alike)"""
    depthless_join_min_contact_px: int = 5
    depthless_join_min_px: int = 20
    """... they touch along at least this many pixels (at 320 px width) and each has this many (at 320x240)."""
    wall_hole_frame: float = 0.9
    """Unlabelled holes whose outline is at least this fraction wall become wall (above 1 disables)."""
    screen_objects: bool = True
    """Dark uniform depth-less holes become object instances (screens), see ``_screens``."""
    screen_max_lightness: float = 35.0
    screen_max_spread: float = 15.0
    """Lab lightness (0-100) median and 10-90 % spread of a screen hole."""
    speckle_fill_px: int = 5
    """Window of ``fill_depth_speckles`` (0 or 1 disables)."""
    speckle_fill_stage: str = "objects"
    """Where filled depth is used: "objects" (the object stage only; planes see measured depth) or "all".
    "all" raised the simulator wall IoU a little but lost part of a desk plane on tum_fr1_desk_9."""
    floor_class: str = "floor"
    wall_class: str = "wall"
    ceiling_class: str = "ceiling"
    support_class: str = "table"
    object_class: str = "object"

    def validate(self) -> None:
        if self.process_width < 16:
            raise ValueError(f"process_width must be >= 16, got {self.process_width}")
        if self.normal_step_px < 1 or self.normal_smooth_px < 1:
            raise ValueError("normal_step_px and normal_smooth_px must be >= 1")
        if not (0 < self.horizontal_deg < 90 and 0 < self.vertical_deg < 90):
            raise ValueError("angle tolerances must be in (0, 90) degrees")
        if self.speckle_fill_stage not in ("objects", "all"):
            raise ValueError(f"speckle_fill_stage must be 'objects' or 'all', got {self.speckle_fill_stage!r}")
        if not (0 < self.island_min_size_m <= self.island_max_size_m
                and 0 <= self.island_min_height_m <= self.island_max_height_m):
            raise ValueError("island size and height ranges must be non-empty and positive")
        if not all(0.0 <= v <= 1.0 for v in (self.island_min_solidity, self.island_max_fraction,
                                              self.island_own_fraction, self.island_max_rest_above)):
            raise ValueError("island_min_solidity, island_max_fraction, island_own_fraction and "
                             "island_max_rest_above must be in [0, 1]")
        if self.wall_front_sigmas < 0 or self.wall_front_min_m < 0 or self.wall_front_min_px < 1:
            raise ValueError("wall_front_sigmas and wall_front_min_m must be >= 0, wall_front_min_px >= 1")
        if self.island_max_convex_ratio <= 0:
            raise ValueError("island_max_convex_ratio must be > 0")
        if self.thin_min_px < 0 or self.strip_min_px < 1 or self.strip_mode_separation_bins < 1:
            raise ValueError("thin_min_px must be >= 0, strip_min_px and strip_mode_separation_bins >= 1")
        if not (0 <= self.strip_saturation_min <= 255 and 0.0 <= self.strip_saturated_fraction <= 1.0):
            raise ValueError("strip_saturation_min must be in [0, 255] and strip_saturated_fraction in [0, 1]")
        if not (0 <= self.strip_vivid_saturation <= 255 and 0.0 <= self.strip_vivid_min_fraction <= 1.0
                and 0.0 <= self.strip_plain_min_fraction <= 1.0):
            raise ValueError("strip_vivid_saturation must be in [0, 255] and strip_vivid_min_fraction and "
                             "strip_plain_min_fraction in [0, 1]")
        if not (0 < self.strip_min_height_m <= self.strip_max_height_m and self.strip_max_width_m > 0):
            raise ValueError("strips need 0 < strip_min_height_m <= strip_max_height_m and strip_max_width_m > 0")
        if not 0 <= self.strip_dark_value_min <= 255 or min(self.lab_strip_distance,
                                                            self.lab_strip_chromatic_distance) < 0 \
                or not 0 <= self.lab_strip_max_fraction <= 1 or not 0 <= self.flat_own_min_fraction <= 1:
            raise ValueError("strip_dark_value_min must be in [0, 255], lab_strip_distance and "
                             "lab_strip_chromatic_distance >= 0, lab_strip_max_fraction and flat_own_min_fraction "
                             "in [0, 1]")
        if not 0.0 <= self.lab_island_chromatic_min_solidity <= 1.0 or self.lab_island_chromatic_distance < 0:
            raise ValueError("lab_island_chromatic_min_solidity must be in [0, 1] and lab_island_chromatic_distance "
                             ">= 0")
        if min(self.lab_island_distance, self.lab_island_lightness_weight, self.lab_island_min_px,
               self.lab_island_min_radius_px) < 0:
            raise ValueError("lab_island_distance, lab_island_lightness_weight, lab_island_min_px and "
                             "lab_island_min_radius_px must be >= 0")
        if self.island_same_chromaticity < 0:
            raise ValueError("island_same_chromaticity must be >= 0")
        if min(self.colour_growth_delta, self.colour_growth_px, self.colour_growth_mean_delta,
               self.colour_growth_max_ratio) < 0:
            raise ValueError("colour_growth_delta, colour_growth_px, colour_growth_mean_delta and "
                             "colour_growth_max_ratio must be >= 0")
        if not (0 <= self.setback_min_step_m <= self.setback_max_step_m and 0 <= self.setback_min_share <= 0.5
                and self.setback_max_height_overlap >= 0 and self.setback_min_px >= 1):
            raise ValueError("set-back fronts need 0 <= setback_min_step_m <= setback_max_step_m, setback_min_share in "
                             "[0, 0.5], setback_max_height_overlap >= 0 and setback_min_px >= 1")
        if min(self.pole_cell_m, self.pole_min_points, self.pole_min_span_m, self.pole_max_width_m,
               self.pole_join_height_m, self.pole_footprint_margin_m) < 0:
            raise ValueError("pole_* parameters must be >= 0")
        if not 0 <= self.stack_min_width_iou <= 1 or self.side_panel_min_height_m < 0:
            raise ValueError("stack_min_width_iou must be in [0, 1], side_panel_min_height_m >= 0")
        if self.nested_max_chromaticity < 0:
            raise ValueError("nested_max_chromaticity must be >= 0")
        if min(self.leg_bar_min_contrast, self.leg_bar_min_clearance_m, self.leg_bar_max_width_m,
               self.leg_bar_min_span, self.top_max_thickness_m, self.leg_piece_max_width_m) < 0 \
                or not 0 <= self.top_gap_max_depth_fraction <= 1:
            raise ValueError("leg_bar_* and top_* parameters must be >= 0, top_gap_max_depth_fraction in [0, 1]")
        if self.furniture_back_color_distance < 0:
            raise ValueError("furniture_back_color_distance must be >= 0")
        if self.pale_parts_min_delta < 0 or self.pale_parts_max_px < 1 or self.pole_trace_min_contrast < 0:
            raise ValueError("pale_parts_min_delta and pole_trace_min_contrast must be >= 0, pale_parts_max_px >= 1")
        if not (1 <= self.unlabelled_parts_min_px <= self.unlabelled_parts_max_px
                and 0.0 <= self.unlabelled_parts_min_solidity <= 1.0 and self.unlabelled_parts_stuff_distance >= 0):
            raise ValueError("unlabelled parts need 1 <= unlabelled_parts_min_px <= unlabelled_parts_max_px, "
                             "unlabelled_parts_min_solidity in [0, 1] and unlabelled_parts_stuff_distance >= 0")


_WALL_MIN_PX = 100          # doors / windows and furniture backs are looked for in walls of at least this many pixels
_BACK_MIN_PX = 150          # furniture backs (``_furniture_backs``): at least this many pixels at 320x240,
_BACK_RING_DROPOUT = 0.35   # ringed by more than this share of depth dropouts,
_BACK_RING_WALL = 0.25      # and by less than this share of wall


def _colour_regions(wall: np.ndarray, distance: np.ndarray, threshold: float):
    """The regions of ``wall`` farther than ``threshold`` from the walls' colour (``distance``), opened 3x3 (no
    1-2 px lines) and closed 5x5 within the wall: cv2.connectedComponentsWithStats' count, labels and stats
    (8-connected). Shape: (h, w) bool, (h, w) float32."""
    cand = (wall & (distance > threshold)).astype(np.uint8)
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    cand = cv2.morphologyEx(cand, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) & wall
    k, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    return k, labels, stats


def _pixels_at(count_320x240: int, h: int, w: int) -> int:
    """A pixel count given for a 320x240 image, scaled to an (h, w) one by area (at least 4)."""
    return max(4, int(round(count_320x240 * (w * h) / (320.0 * 240.0))))


def _holders(inst: np.ndarray, regions: list[np.ndarray]) -> set[int]:
    """The instance holding each region, for the regions more than half of whose pixels an instance holds: the
    commonest there. Shape: (h, w) uint16, list of (h, w) bool."""
    out = set()
    for region in regions:
        held = inst[region]
        held = held[held > 0]
        if len(held) > 0.5 * np.count_nonzero(region):
            out.add(int(np.bincount(held).argmax()))
    return out


def _histogram_peaks(values: np.ndarray, bin_m: float, min_count: int, max_peaks: int) -> list[float]:
    """Centers of the largest peaks of a 1D histogram (non-maximum suppressed over +-3 bins)."""
    if len(values) < min_count or min_count <= 0:
        return []
    lo, hi = float(values.min()), float(values.max())
    nb = max(1, int(np.ceil((hi - lo) / bin_m)) + 1)
    hist = np.bincount(((values - lo) / bin_m).astype(np.int64), minlength=nb).astype(np.float64)
    sm = np.convolve(hist, [1.0, 1.0, 1.0], mode="same")
    peaks = []
    for _ in range(max_peaks):
        i = int(np.argmax(sm))
        if sm[i] < min_count:
            break
        peaks.append(lo + (i + 0.5) * bin_m)
        sm[max(0, i - 3):i + 4] = 0
    return peaks


class GeometricBackend:
    """Model-free panoptic segmentation from depth + gravity (see the module doc). Needs depth and camera."""

    name = "geometric"

    def __init__(self, label_space: LabelSpace, config: GeometricConfig | None = None, **options) -> None:
        cfg = config if config is not None else GeometricConfig()
        fields = set(GeometricConfig.__dataclass_fields__)
        unknown = [k for k in options if k not in fields and k not in ("device", "seed")]
        if unknown:
            raise ValueError(f"unknown geometric options {unknown}; known: {sorted(fields)}")
        cfg = replace(cfg, **{k: v for k, v in options.items() if k in fields})
        cfg.validate()
        self.config = cfg
        self.label_space = label_space
        try:
            self._ids = {role: label_space.id_of(getattr(cfg, f"{role}_class"))
                         for role in ("floor", "wall", "ceiling", "support", "object")}
            self._ids["door"] = label_space.id_of("door") if "door" in label_space.names() else self._ids["wall"]
            self._ids["window"] = label_space.id_of("window") if "window" in label_space.names() else self._ids["wall"]
        except KeyError as e:
            raise ValueError(f"geometric backend: {e.args[0]}") from None
        self._colour: FrameColour | None = None   # per frame (reset by ``_segment``)
        self._lab_grad: np.ndarray | None = None
        self.last_up: np.ndarray | None = None
        """Up vector (camera frame) used for the last frame; for inspection."""
        self.last_planes: list[tuple[str, float, int, int]] = []
        """Planes considered in the last frame, for inspection: (kind, offset_m along up / the wall
        normal, inlier pixels, valid pixels beyond the plane)."""

    def predict_batch(self, inputs: list[PanopticInput]) -> list[PanopticResult]:
        return [self.predict(i) for i in inputs]

    def predict(self, inp: PanopticInput) -> PanopticResult:
        validate_input(inp, need_depth=True, need_camera=True)
        cfg = self.config
        H, W = inp.shape
        depth = np.asarray(inp.depth_m, dtype=np.float32)
        cam = inp.camera
        if W > cfg.process_width:
            f = cfg.process_width / W
            cam = cam.scaled(f)
            depth = cv2.resize(depth, (cam.width, cam.height), interpolation=cv2.INTER_NEAREST)
        color = inp.color
        if color.shape[:2] != depth.shape:
            color = cv2.resize(color, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
        sem, inst, classes = self._segment(depth, cam, inp.gravity_camera, color)
        if sem.shape != (H, W):
            sem = cv2.resize(sem, (W, H), interpolation=cv2.INTER_NEAREST)
            inst = cv2.resize(inst, (W, H), interpolation=cv2.INTER_NEAREST)
        return PanopticResult(sem, inst, None, classes, {k: 1.0 for k in classes})

    def _concave_edges(self, P: np.ndarray, n: np.ndarray, nok: np.ndarray) -> np.ndarray:
        """Pixels on a concave crease (where two surfaces meet like a box standing against a sofa).

        For neighbours i, j (``normal_step_px`` apart) with offset d = p_j - p_i, the crease is concave when
        ``d_hat . (n_j - n_i) < -concave_threshold``; convex creases (the edges of one box) give a positive
        value and do not cut, so an object's faces stay together. Shape: (h, w, 3) x2, (h, w) -> (h, w) bool.
        """
        thr = self.config.concave_threshold
        cut = np.zeros(nok.shape, bool)
        for sl_i, sl_j, value in creases(P, n, nok, self.config.normal_step_px):
            c = value < -thr
            cut[sl_i] |= c
            cut[sl_j] |= c
        return cut

    def _in_front_of_wall(self, inliers: np.ndarray, offset_m: np.ndarray, z: np.ndarray, min_px: int) -> np.ndarray:
        """The inliers of a wall plane that are an object standing in front of it, not wall: connected groups
        (8-neighbours) of inliers more than one depth-noise std (``nguyen_sigma_m``) in front of the plane, of at
        least ``min_px`` pixels, whose median offset is more than ``wall_front_sigmas`` stds (at the group's
        median) and at least ``wall_front_min_m`` beyond the median of the inliers within 3 px around them. Noise
        alone makes no such group: the inliers more than one std in front of a plain wall are ~16 % of it, in
        small clusters (below the 8-neighbour percolation density), ~1.4 stds in front (median); closing 1 px gaps
        would join them into one network. Measuring the step against the ring, not the plane, leaves a real
        wall's slow warp (towards the image border, in the 3DMatch frames) alone.
        Shape: (h, w) bool, (h, w) meters towards the camera from the plane, (h, w) meters -> (h, w) bool."""
        cfg = self.config
        sigma = nguyen_sigma_m(np.maximum(z, 0.3))
        out = np.zeros(inliers.shape, bool)
        for box, group in component_crops(inliers & (offset_m > sigma), min_px, margin_px=3):
            # a step out of the wall around it, not a stretch of wall off the fitted plane (a real wall warps
            # towards the image border): measured against the inliers just around the group
            ring = cv2.dilate(group.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~group \
                & inliers[box]
            if ring.sum() < 10:
                continue
            step = float(fast_median(offset_m[box][group]) - fast_median(offset_m[box][ring]))
            if step > cfg.wall_front_sigmas * float(fast_median(sigma[box][group])) and step >= cfg.wall_front_min_m:
                out[box] |= group
        return out

    def _doors_windows(self, sem: np.ndarray, wall: np.ndarray, nw: np.ndarray, up: np.ndarray, P: np.ndarray,
                       height: np.ndarray, color: np.ndarray, floor_h: float | None, valid: np.ndarray,
                       wall_colour: np.ndarray) -> np.ndarray:
        """Relabel door- and window-shaped regions of a wall plane whose color differs from the walls'.

        Geometry cannot tell a closed door or a window pane from the wall they sit in, so this looks for a
        connected region of the wall plane whose Lab color (lightness weighted by ``door_lightness_weight``:
        light falloff shades plain walls) is far (> ``door_color_distance``) from the median color of all
        walls in the frame, and judges it by its metric size in the wall plane: a **door** reaches down to
        the floor, is at least 1.2 m tall there and 0.3-1.4 m wide (without a floor: at least 1.6 m tall);
        a **window** is at least 0.3 m in both directions and starts at least 0.3 m above the floor (or no
        floor is known). Both must be framed by the wall or floor on at least ``door_min_wall_frame`` of
        the pixels with depth around them, and have a sharp color edge against the wall
        (``_sharp_outline``). A differently colored region framed by other things is the back panel of furniture
        standing against the wall (a bookshelf): it is released from the wall and returned (the caller
        hands it to the objects). ``wall_colour``: the median 8-bit Lab colour of all walls of the frame (a door
        can fill half of its own wall plane, never half of all walls seen). Shape: masks (h, w), (3,) -> released
        (h, w) bool.
        """
        released = np.zeros(wall.shape, bool)
        cfg = self.config
        if wall.sum() < _WALL_MIN_PX:
            return released
        frame_ok = wall | (sem == self._ids["floor"])
        lab = self._frame_colour(color).lab_raw
        # lightness counts less than chroma: light falloff and lamp spots shade a plain wall
        weight = np.array([cfg.door_lightness_weight, 1.0, 1.0], np.float32)
        distance = np.zeros(wall.shape, np.float32)
        distance[wall] = norm3((lab[wall] - wall_colour) * weight)
        k, lab_cc, stats = _colour_regions(wall, distance, cfg.door_color_distance)
        along = np.cross(up, nw).astype(np.float32)
        s_along = P @ along
        for j in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= 30) + 1:
            box = stats_box(stats[j], 3)      # room for the 7x7 ring
            region = lab_cc[box] == j
            h_lo, h_hi = percentiles(height[box][region], (2, 98))
            s_lo, s_hi = percentiles(s_along[box][region], (2, 98))
            tall, wide = h_hi - h_lo, s_hi - s_lo
            near_floor = floor_h is not None and h_lo - floor_h < 0.3
            ring = cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~region
            ring_valid = valid[box][ring]
            # a door, a window or a poster is flush with its wall: no depth edge, so no dropouts around it;
            # a furniture back seen between its frame (a bookshelf's) is ringed by the frame's depth edges
            edged = len(ring_valid) >= 10 and float(np.mean(~ring_valid)) > cfg.door_max_ring_dropout
            ring_seen = ring & valid[box]  # depth dropouts at furniture edges frame nothing
            if edged or (ring_seen.sum() >= 10 and frame_ok[box][ring_seen].mean() < cfg.door_min_wall_frame):
                sem[box][region] = 0
                released[box] |= region
            elif not self._sharp_outline(region, wall[box], self._color_gradient(color)[box]):
                continue  # a shading gradient (light falloff) crossing the threshold, not a door / window
            elif 0.3 <= wide <= 1.4 and ((near_floor and tall >= 1.2) or (floor_h is None and tall >= 1.6)):
                # the top of a door is often above the image: 1.2 m visible from the floor is enough
                sem[box][region] = self._ids["door"]
            elif tall >= 0.3 and wide >= 0.3 and (floor_h is None or h_lo - floor_h > 0.3):
                sem[box][region] = self._ids["window"]
        if cfg.furniture_back_color_distance > 0:
            released |= self._furniture_backs(sem, wall & (sem == self._ids["wall"]), valid, distance)
        return released

    def _furniture_backs(self, sem: np.ndarray, wall: np.ndarray, valid: np.ndarray,
                         distance: np.ndarray) -> np.ndarray:
        """The second pass of ``_doors_windows``, in place: a bookshelf's back seen between its boards, within
        ``door_color_distance`` of the walls' colour but farther than ``furniture_back_color_distance`` (a brown
        back against a grey-brown wall), is released from the wall when the 7x7 ring round it is mostly depth
        dropouts (> ``_BACK_RING_DROPOUT``: the boards' and sides' edges) and hardly wall (< ``_BACK_RING_WALL``);
        regions under ``_BACK_MIN_PX`` pixels (at 320x240: shaded wall between cables) or cut by the image border
        (whether a frame surrounds them is unknown) stay wall. ``distance``: ``_doors_windows``' colour distance of
        the wall pixels from the walls' colour. Returns the released pixels.
        Shape: (h, w) uint16, (h, w) bool x2, (h, w) float32 -> (h, w) bool."""
        cfg = self.config
        released = np.zeros(wall.shape, bool)
        if wall.sum() < _WALL_MIN_PX:
            return released
        k, regions, stats = _colour_regions(wall, distance, cfg.furniture_back_color_distance)
        h, w = wall.shape
        walls = sem == self._ids["wall"]
        for j in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= _pixels_at(_BACK_MIN_PX, h, w)) + 1:
            x0, y0, bw, bh, area = (int(v) for v in stats[j])
            if x0 <= 1 or y0 <= 1 or x0 + bw >= w - 1 or y0 + bh >= h - 1:
                continue
            box = stats_box(stats[j], 3)
            region = regions[box] == j
            if float(fast_median(distance[box][region])) > cfg.door_color_distance:
                continue    # clearly another colour: the first pass judged it
            ring = cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~region
            if float(np.mean(~valid[box][ring])) > _BACK_RING_DROPOUT \
                    and float(np.mean(walls[box][ring])) < _BACK_RING_WALL:
                sem[box][region] = 0
                released[box] |= region
        return released

    def _frame_colour(self, color: np.ndarray) -> FrameColour:
        """The colour conversions of the frame ``_segment`` works on (``color``: its image at processing size),
        made on first use after ``_segment`` reset them."""
        if self._colour is None:
            self._colour = FrameColour(color)
        return self._colour

    def _color_gradient(self, color: np.ndarray) -> np.ndarray:
        """Local Lab color change over 2 px (an edge between two flat colors reaches about their
        weighted Lab distance), lightness weighted by ``door_lightness_weight``, max over 3x3 (an edge may
        lie a pixel beside a region's border); cached per frame.
        Shape: (h, w, 3) uint8 RGB -> (h, w) float32."""
        if self._lab_grad is None:
            weight = np.array([self.config.door_lightness_weight, 1.0, 1.0], np.float32)
            sm = cv2.GaussianBlur(self._frame_colour(color).lab_raw, (3, 3), 0) * weight
            gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3) / 8.0
            gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / 8.0
            grad = 2.0 * np.sqrt((gx * gx + gy * gy).sum(axis=-1))
            self._lab_grad = cv2.dilate(grad, np.ones((3, 3), np.uint8))  # the edge may lie a pixel outside
        return self._lab_grad

    def _sharp_outline(self, region: np.ndarray, wall: np.ndarray, grad: np.ndarray) -> bool:
        """Whether the color changes sharply at the region's outline: the median over its border pixels of
        the local Lab gradient (``_color_gradient``, weighted like the candidate distance, per pixel) exceeds
        ``door_edge_contrast``. A door or a window is a painted / glazed panel with an edge; a gradient of
        light over a plain wall crosses the candidate threshold smoothly. All three are crops of a box round the
        region with a margin of at least 1 px. Shape: (h, w) bool x2, (h, w) float32."""
        # only the outline against the wall: where the region meets floor, furniture or missing depth the
        # color always changes
        outside = wall & ~region
        border = region & cv2.dilate(outside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if not border.any():
            return False
        return float(fast_median(grad[border])) > self.config.door_edge_contrast

    def _screens(self, sem: np.ndarray, inst: np.ndarray, classes: dict[int, int], color: np.ndarray,
                 valid: np.ndarray, min_px: int, thin: set[int] = frozenset()) -> None:
        """Screens among the unlabelled regions (no depth, noisy crumbs), in place: the unlabelled pixels
        without depth whose color is dark (Lab lightness <= ``screen_max_lightness``), opened with a 3x3
        square so that thin dark bridges (depth dropouts along dark furniture edges, table legs) do not join
        them to other holes; each blob of at least ``min_px`` pixels with a uniform lightness (10-90 % spread
        <= ``screen_max_spread``) is a screen (a TV or monitor returns no depth from its glass, a black sofa
        none from its fabric): a new object instance (grown back into the dark pixels the opening removed).
        Shape: (h, w) uint16 x2, (h, w, 3) uint8 RGB, (h, w) bool.
        """
        cfg = self.config
        if cfg.screen_objects:
            L = self._frame_colour(color).lab_raw[..., 0] * (100.0 / 255.0)
            dark = ((sem == 0) & ~valid & (L <= cfg.screen_max_lightness)).astype(np.uint8)
            blobs = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
            k, lab, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=4)
            big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_px)
            big = big[big > 0]
            if len(big):
                # grow the blobs back by the opening's 1 px, inside the dark pixels only
                grown = cv2.dilate(lab.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
                lab = np.where(dark.astype(bool) & (lab == 0), grown, lab)
                next_id = max(classes, default=0) + 1
                obj_id = self._ids["object"]
                for j in big:
                    region = lab == j
                    lo, hi = percentiles(L[region], (10, 90))
                    if hi - lo > cfg.screen_max_spread:
                        continue
                    if thin:
                        # a screen's bezel returns depth only as a thin frame (a piece of its own): one object
                        near = cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
                        for t in np.unique(inst[near & ~region]):
                            if int(t) not in thin:
                                continue
                            piece = inst == t
                            if (near & piece).sum() >= 0.5 * piece.sum():
                                region = region | piece
                    sem[region] = obj_id
                    inst[region] = next_id
                    classes[next_id] = obj_id
                    next_id += 1

    def _wall_holes(self, sem: np.ndarray, inst: np.ndarray) -> None:
        """Unlabelled regions whose outline is at least ``wall_hole_frame`` wall pixels (the image border does
        not count) lie inside a wall: wall, in place. Shape: (h, w) uint16 x2."""
        wall_id = self._ids["wall"]
        unl = (sem == 0).astype(np.uint8)
        k, lab, stats, _ = cv2.connectedComponentsWithStats(unl, connectivity=8)
        if k <= 1:
            return
        # outline pixels of every hole at once: the labelled pixels next to it, counted per hole and class
        grown = cv2.dilate(lab.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
        ring = (unl == 0) & (grown > 0)
        total = np.bincount(grown[ring], minlength=k)
        walls = np.bincount(grown[ring & (sem == wall_id)], minlength=k)
        wall_ok = (total > 0) & (walls >= self.config.wall_hole_frame * np.maximum(total, 1))
        wall_ok[0] = False
        hole = wall_ok[lab]
        sem[hole] = wall_id
        inst[hole] = 0

    @staticmethod
    def _thin_pieces(rest: np.ndarray, lab_ids: np.ndarray, next_id: int, min_px: int, z: np.ndarray,
                     valid: np.ndarray, min_step_m: float) -> tuple[int, list[int]]:
        """Pieces of object material left unlabelled after growing, in place in ``lab_ids``; returns the next
        free id and the new ids.

        A structure a few pixels wide (a table leg, a lamp pole, a desk top seen edge-on) is all depth edge:
        cut on both sides, it has no core component to grow from. A connected part of ``rest`` of at least
        ``min_px`` pixels is kept when it stands in front of what surrounds it (its median depth at least
        ``min_step_m`` nearer than the median of the valid pixels around it): the line where a wall meets
        the floor or another wall is left over too, but at the depth of its surroundings.
        Shape: (h, w) bool, (h, w) int32, int, int, (h, w) float32 m, (h, w) bool."""
        ids: list[int] = []
        for box, piece in component_crops(rest, min_px, margin_px=3):
            ring = cv2.dilate(piece.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~piece \
                & valid[box] & ~rest[box]
            zz = z[box]
            if ring.sum() < 4 or fast_median(zz[piece]) > fast_median(zz[ring]) - min_step_m:
                continue
            lab_ids[box][piece] = next_id
            ids.append(next_id)
            next_id += 1
        return next_id, ids

    def _late_poles(self, sem: np.ndarray, inst: np.ndarray, classes: dict[int, int], with_depth: np.ndarray,
                    P: np.ndarray, height: np.ndarray, up: np.ndarray, floor_h: float) -> None:
        """The second pole pass (``pole_late_pass``), in place: poles among the pixels ``with_depth`` that no instance
        holds (stuff included) join the instance resting on their top (``join_poles``) and take its class."""
        labels = inst.astype(np.int64)
        joined = join_poles(self.config, labels, with_depth, P, height, up, floor_h, set())
        changed = joined != labels
        inst[changed] = joined[changed].astype(inst.dtype)
        for i in np.unique(joined[changed]).tolist():
            sem[changed & (joined == i)] = classes[i]

    @staticmethod
    def _fill_unlabelled(sem: np.ndarray, inst: np.ndarray, max_dist_px: float) -> None:
        """Give unlabelled pixels (mostly depth dropouts at edges and on dark surfaces) the label of the
        nearest labelled pixel within ``max_dist_px`` when that is an object instance, in place.
        Shape: (h, w) uint16 x2."""
        unl = sem == 0
        if not unl.any() or unl.all():
            return
        dist, nearest = cv2.distanceTransformWithLabels(unl.astype(np.uint8), cv2.DIST_L2, 3,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
        src = np.flatnonzero(~unl.ravel())           # label k (1-based) = k-th labelled pixel in raster order
        fill = unl & (dist <= max_dist_px)
        idx = src[nearest[fill] - 1]
        # only objects grow: a depth hole next to a wall is as likely dark furniture as wall
        thing = inst.ravel()[idx] > 0
        ys, xs = np.nonzero(fill)
        sem[ys[thing], xs[thing]] = sem.ravel()[idx[thing]]
        inst[ys[thing], xs[thing]] = inst.ravel()[idx[thing]]

    # --- the algorithm, at processing resolution -------------------------------------------------
    def _segment(self, depth: np.ndarray, cam: PinholeCamera, gravity_camera, color: np.ndarray | None = None):
        cfg = self.config
        h, w = depth.shape
        self._colour = None    # the frame's colour conversions and Lab gradient, made once per frame when needed
        self._lab_grad = None
        valid = np.isfinite(depth) & (depth > 0) & (depth < cfg.max_depth_m)
        z = np.where(valid, depth, 0.0).astype(np.float32)
        if cfg.speckle_fill_px > 1 and cfg.speckle_fill_stage == "all":
            z, valid = fill_depth_speckles(z, valid, cfg.speckle_fill_px, cfg.edge_depth_ratio)
        rays = cam.ray_directions().astype(np.float32)        # (h, w, 3), z = 1
        P = rays * z[..., None]
        n, nok = depth_normals(P, valid, cfg.normal_step_px, cfg.normal_smooth_px, cfg.edge_depth_ratio)
        far = z > cfg.far_normal_depth_m
        if far.sum() > 0.02 * z.size:
            n3, nok3 = depth_normals(P, valid, 3 * cfg.normal_step_px, cfg.normal_smooth_px + 2,
                                     cfg.edge_depth_ratio)
            n = np.where(far[..., None], n3, n)
            nok = np.where(far, nok3, nok)
        sem = np.zeros((h, w), np.uint16)
        inst = np.zeros((h, w), np.uint16)
        classes: dict[int, int] = {}
        n_valid = int(valid.sum())
        self.last_up = None
        self.last_planes = []
        if n_valid < 50:
            return sem, inst, classes
        if gravity_camera is not None:
            g = np.asarray(gravity_camera, np.float64)
            up = -g / np.linalg.norm(g)
        else:
            up = estimate_up(n, nok)
            if up is None:
                up = np.array([0.0, -1.0, 0.0])
        self.last_up = up
        up32 = up.astype(np.float32)
        height = P @ up32                      # (h, w) meters above the camera
        cos_up = n @ up32                      # (h, w)
        tol = cfg.plane_tolerance_m + cfg.plane_tolerance_quadratic * z * z
        margin = cfg.outside_margin_m + 0.01 * z * z
        min_plane_px = max(20, int(cfg.plane_min_fraction * n_valid))
        outside_max = cfg.outside_max_fraction * n_valid
        cos_h = np.cos(np.deg2rad(cfg.horizontal_deg))
        sin_v = np.sin(np.deg2rad(cfg.vertical_deg))
        taken = np.zeros((h, w), bool)

        def horizontal_inliers(h0: float, facing: float) -> np.ndarray:
            # pixels without a reliable normal (noisy far or grazing surfaces) join on distance alone
            return valid & (np.abs(height - h0) < tol) & (~nok | (facing * cos_up > np.cos(np.deg2rad(40.0))))

        # floor: lowest large up-facing plane well below the camera with (almost) nothing below it
        upm = valid & nok & (cos_up > cos_h)
        up_peaks = sorted(_histogram_peaks(height[upm], 0.02, min(min_plane_px, 200), cfg.max_planes))
        floor_h = None
        for h0 in up_peaks:
            if h0 > -cfg.floor_min_below_camera_m:
                break
            m = horizontal_inliers(h0, 1.0)
            if m.sum() < min_plane_px:
                continue
            below = int((height < h0 - margin)[valid].sum())
            self.last_planes.append(("floor_candidate", h0, int(m.sum()), below))
            if below <= outside_max:
                floor_h = float(fast_median(height[m]))
                self.last_planes.append(("floor", floor_h, int(m.sum()), below))
                m = horizontal_inliers(floor_h, 1.0)
                sem[m] = self._ids["floor"]
                taken |= m
            break  # only the lowest large plane may be the floor
        # ceiling: highest large down-facing plane above the camera with (almost) nothing above it
        downm = valid & nok & (cos_up < -cos_h)
        down_peaks = sorted(_histogram_peaks(height[downm], 0.02, min(min_plane_px, 200), cfg.max_planes),
                            reverse=True)
        for h0 in down_peaks:
            if h0 < 0.2:
                break
            m = horizontal_inliers(h0, -1.0) & ~taken
            if m.sum() < min_plane_px:
                continue
            if (height > h0 + margin)[valid].sum() <= outside_max:
                h1 = float(fast_median(height[m]))
                m = horizontal_inliers(h1, -1.0) & ~taken
                sem[m] = self._ids["ceiling"]
                taken |= m
            break

        walls: list[tuple[np.ndarray, np.ndarray]] = []
        # walls: vertical planes bounding the visible space. Normal directions first (azimuth histogram
        # of vertical-normal pixels), then plane offsets along each refined direction: offsets computed
        # with one shared normal are far less noisy than with per-pixel normals.
        vert = valid & nok & (np.abs(cos_up) < sin_v) & ~taken
        if vert.sum() >= min_plane_px:
            nh = n[vert] - cos_up[vert][:, None] * up32
            nh /= np.maximum(norm3(nh), 1e-9)[:, None]
            e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(up, e1)
            az = np.arctan2(nh @ e2.astype(np.float32), nh @ e1.astype(np.float32))
            n_az = 72
            ia = ((az + np.pi) * (n_az / (2 * np.pi))).astype(np.int64) % n_az
            hist = np.bincount(ia, minlength=n_az).astype(np.float64)
            sm = hist + np.roll(hist, 1) + np.roll(hist, -1) + np.roll(hist, 2) + np.roll(hist, -2)
            Pv = P[vert]
            for _ in range(cfg.max_planes):
                a = int(np.argmax(sm))
                if sm[a] < min_plane_px:
                    break
                sm[[(a + k) % n_az for k in range(-4, 5)]] = 0  # +-22 degrees suppressed
                ang = -np.pi + (a + 0.5) * 2 * np.pi / n_az
                nw = np.cos(ang) * e1 + np.sin(ang) * e2
                for cone_deg in (15.0, 8.0):
                    sel = nh @ nw.astype(np.float32) > np.cos(np.deg2rad(cone_deg))
                    if sel.sum() < 10:
                        break
                    nw = nh[sel].mean(axis=0).astype(np.float64)
                    nw -= (nw @ up) * up
                    nw /= np.linalg.norm(nw)
                if sel.sum() < min_plane_px * 0.5:
                    continue
                nw32 = nw.astype(np.float32)
                dist = P @ nw32
                for r0 in _histogram_peaks(Pv[sel] @ nw32, 0.03, int(min_plane_px * 0.5), 4):
                    m0 = valid & ~taken & (np.abs(dist - r0) < tol) & (~nok | (n @ nw32 > np.cos(np.deg2rad(40.0))))
                    if m0.sum() < min_plane_px:
                        continue
                    r1 = float(fast_median(dist[m0]))
                    m = valid & ~taken & (np.abs(dist - r1) < tol) & (~nok | (n @ nw32 > np.cos(np.deg2rad(40.0))))
                    behind = int((dist < r1 - margin)[valid].sum())
                    self.last_planes.append(("vertical_candidate", r1, int(m.sum()), behind))
                    if m.sum() < min_plane_px or behind > outside_max:
                        continue  # small, or something is visible behind it (a cabinet front): not a wall
                    if cfg.wall_front_sigmas > 0:
                        m &= ~self._in_front_of_wall(m, dist - r1, z, _pixels_at(cfg.wall_front_min_px, h, w))
                    sem[m] = self._ids["wall"]
                    taken |= m
                    walls.append((m, nw))
        if cfg.doors_windows and color is not None:
            wall_colour = None
            for m, nw in walls:
                if wall_colour is None and m.sum() >= _WALL_MIN_PX:   # smaller ones are left as they are
                    wall_colour = fast_median(self._frame_colour(color).lab_raw[sem == self._ids["wall"]], axis=0)
                released = self._doors_windows(sem, m, nw, up, P, height, color, floor_h, valid, wall_colour)
                taken &= ~released

        # support surfaces: other up-facing planes, large connected regions only
        # surface area seen by each pixel: z^2 / (fx fy) / |n . r| with r = (x, y, 1) its ray (foreshortening
        # by the angle between the ray and the surface normal; a table top seen at a grazing angle covers
        # few pixels for its size); capped at 5x the frontal area where normals are unreliable
        n_dot_r = np.abs(np.einsum("hwc,hwc->hw", n, rays))
        pix_area = (z * z) / (cam.fx * cam.fy) / np.maximum(np.where(nok, n_dot_r, 1.0), 0.2)
        next_id = 1
        supports: list[tuple[int, np.ndarray, float]] = []  # (instance id, region, height)
        # greedy: the strongest height peak among the remaining up-facing pixels, its regions, repeat
        # (two desks a few cm apart in height are two peaks; a one-shot peak list would merge them)
        good_up = upm & (z < cfg.support_max_depth_m)
        tried: list[float] = []
        for _ in range(cfg.max_planes):
            rest = good_up & ~taken
            if floor_h is not None:
                rest &= height > floor_h + cfg.outside_margin_m
            for h_t in tried:
                rest &= np.abs(height - h_t) > 0.02
            peaks = _histogram_peaks(height[rest], 0.02, 20, 1)
            if not peaks:
                break
            h0 = peaks[0]
            tried.append(h0)
            m = horizontal_inliers(h0, 1.0) & ~taken & (z < cfg.support_max_depth_m)
            if m.sum() < 20:
                continue
            mm = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) & m
            k, lab, stats, _ = cv2.connectedComponentsWithStats(mm.astype(np.uint8), connectivity=8)
            if k <= 1:
                continue
            area = np.bincount(lab.ravel(), weights=pix_area.ravel(), minlength=k)
            reliable = np.bincount(lab.ravel(), weights=(nok & (cos_up > cos_h)).ravel(), minlength=k)
            # large, and mostly pixels whose own normal points up (not far noisy vertical stuff)
            for j in np.flatnonzero((area >= cfg.support_min_area_m2) & (reliable >= 0.5 * stats[:, cv2.CC_STAT_AREA])):
                if j == 0:
                    continue
                region = lab == j
                sem[region] = self._ids["support"]
                inst[region] = next_id
                classes[next_id] = self._ids["support"]
                supports.append((next_id, region, float(fast_median(height[region]))))
                taken |= region
                next_id += 1

        fine_up = None
        if cfg.fine_patch_tops and cfg.patch_min_area_m2 > 0:
            # 1-px normals on measured depth: a box top a few rows tall, which the coarse normals smear
            n1, nok1 = depth_normals(P, valid, 1, 3, cfg.edge_depth_ratio)
            fine_up = nok1 & (n1 @ up32 > cos_h)
        # objects: the rest, cut at depth discontinuities, connected components
        if cfg.speckle_fill_px > 1 and cfg.speckle_fill_stage == "objects":
            # dropouts inside an object's surface must not cut it; planes were found on measured depth only
            z, valid_obj = fill_depth_speckles(z, valid, cfg.speckle_fill_px, cfg.edge_depth_ratio)
            P = rays * z[..., None]
            height = P @ up32
        else:
            valid_obj = valid
        obj = valid_obj & ~taken
        thr = cfg.edge_depth_ratio * z + 0.01
        thr_x = thr_y = thr
        if cfg.edge_noise_sigmas > 0:
            # where the normal is known, the step to the next pixel on the same plane is predictable:
            # |dz| = z |n_x| / (fx |n . r|) (plane n . p = c, p = z r); allow that plus the depth noise of
            # two pixels (Nguyen model) instead of the generic 4 % of z, so that surfaces a few cm apart in
            # depth are cut while slanted ones (a table top seen at a grazing angle) are not
            n_dot_r_min = np.maximum(n_dot_r, 0.2)  # |n . r| of the support stage (same normals and rays)
            noise = cfg.edge_noise_sigmas * np.sqrt(2.0) * nguyen_sigma_m(np.maximum(z, 0.3)) + 0.005
            thr_x = np.where(nok, np.minimum(thr, z * np.abs(n[..., 0]) / (cam.fx * n_dot_r_min) + noise), thr)
            thr_y = np.where(nok, np.minimum(thr, z * np.abs(n[..., 1]) / (cam.fy * n_dot_r_min) + noise), thr)
        cut = np.zeros((h, w), bool)
        jump_x = np.abs(np.diff(z, axis=1)) > np.minimum(thr_x[:, 1:], thr_x[:, :-1])
        jump_y = np.abs(np.diff(z, axis=0)) > np.minimum(thr_y[1:], thr_y[:-1])
        cut[:, 1:] |= jump_x
        cut[:, :-1] |= jump_x
        cut[1:] |= jump_y
        cut[:-1] |= jump_y
        if cfg.concave_threshold > 0:
            # noisy far normals would shatter objects into crumbs: creases only where normals are good
            cut |= self._concave_edges(P, n, nok) & (z < cfg.concave_max_depth_m)
        # small horizontal up-facing patches inside the object material (a cabinet top, a shelf board, a
        # chair seat, a box top): separators between what stands on them and what carries them
        patches = horizontal_patches(cfg, obj, height, cos_up > cos_h, nok, z, pix_area) \
            if cfg.patch_min_area_m2 > 0 else []
        fine_tops: list[tuple[np.ndarray, float]] = []
        if fine_up is not None:
            # a top's surface: z^2 / (fx fy) / |ray . up| (its normal is up)
            fine_area = (z * z) / (cam.fx * cam.fy) / np.maximum(np.abs(rays @ up32), 0.2)
            fine_tops = foreshortened_tops(cfg, obj, height, z, patches, (cos_up > cos_h) & nok, fine_up, pix_area,
                                           fine_area, cam.fy)
        patch_all = np.zeros((h, w), bool)
        for region, _ in patches + fine_tops:
            patch_all |= region
        core = obj & ~cut & ~patch_all
        k, lab, stats, _ = cv2.connectedComponentsWithStats(core.astype(np.uint8), connectivity=4)
        min_px = _pixels_at(cfg.min_object_px, h, w)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_px
        set_back: list[tuple[int, int]] = []
        if cfg.setback_min_step_m > 0:
            lab, k, set_back = split_set_back_fronts(cfg, lab, k, P, n, nok, height, up,
                                                     _pixels_at(cfg.setback_min_px, h, w))
            keep = np.bincount(lab.ravel(), minlength=k) >= min_px
        keep[0] = False
        ids = np.zeros(k, np.int64)
        ids[keep] = np.arange(next_id, next_id + int(keep.sum()))
        next_id += int(keep.sum())
        lab_ids = ids[lab].astype(np.int32)
        items: list[tuple[int, np.ndarray, float, bool]] = []   # (id, region, height, is a large support)
        for sid, region, h_s in supports:
            lab_ids[region] = sid
            items.append((sid, region, h_s, True))
        fine_items: list[tuple[int, np.ndarray, float, bool]] = []    # the foreshortened tops, joined apart
        for listed, found in ((items, patches), (fine_items, fine_tops)):
            for region, h_p in found:
                lab_ids[region] = next_id
                listed.append((next_id, region, h_p, False))
                next_id += 1
        # give the cut pixels (silhouette borders, creases) and tiny fragments back to the adjacent
        # component, a few pixels at a time
        for _ in range(cfg.grow_iterations):
            grown = cv2.dilate(lab_ids.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
            fill = obj & (lab_ids == 0) & (grown > 0)
            if not fill.any():
                break
            lab_ids[fill] = grown[fill]
        thin_ids: list[int] = []
        if cfg.thin_min_px > 0:
            next_id, thin_ids = self._thin_pieces(obj & (lab_ids == 0), lab_ids, next_id,
                                                  _pixels_at(cfg.thin_min_px, h, w), z, valid_obj,
                                                  cfg.thin_min_step_m)
        pairs = coplanar_pairs(cfg, lab_ids, P, {i for i, _, _, _ in items + fine_items}) \
            if cfg.coplanar_gap_px > 0 else []
        if cfg.patch_carrier_split:
            next_id = split_patch_carriers(cfg, lab_ids, items + fine_items, P, height, up, z, next_id)
        root = join_at_patches(cfg, lab_ids, items, P, height, up, z, next_id, pairs)
        root = join_fine_patches(cfg, lab_ids, fine_items, root, P, height, up, z)
        final = root[lab_ids]
        apart = {(int(root[ids[a]]), int(root[ids[b]])) for a, b in set_back if ids[a] and ids[b]}
        if cfg.pole_cell_m > 0 and floor_h is not None:
            final = join_poles(cfg, final, obj, P, height, up, floor_h, {int(root[t]) for t in thin_ids})
        support_roots = {int(root[sid]) for sid, _, _, big in items if big}
        obj_cls = self._ids["object"]
        sup_cls = self._ids["support"]
        m = final > 0
        is_sup = np.isin(final, list(support_roots)) & m
        sem[m] = obj_cls
        sem[is_sup] = sup_cls
        inst[m] = final[m].astype(np.uint16)
        for i in np.unique(final[m]):
            classes[int(i)] = sup_cls if int(i) in support_roots else obj_cls
        unlabelled = sem == 0
        if cfg.fill_px > 0:
            self._fill_unlabelled(sem, inst, cfg.fill_px * w / 320.0)
        filled = unlabelled & (sem > 0)
        thin_roots = {int(root[t]) for t in thin_ids if int(root[t]) == t}
        if color is not None:
            self._screens(sem, inst, classes, color, valid, min_px, thin_roots)
        colour_ids: list[int] = []
        cut_from: dict[int, int] = {}
        if (cfg.colour_strips or cfg.flat_blobs or cfg.colour_islands) and color is not None:
            _, colour_ids = split_colour(
                cfg, inst, {i for i, c in classes.items() if c == obj_cls} if cfg.colour_strips else set(),
                set(classes) if cfg.flat_blobs else set(), color, np.where(valid_obj[..., None], P, 0.0), up,
                cam.fx, max(classes, default=0) + 1, _pixels_at(cfg.strip_min_px, h, w),
                set(classes) if cfg.colour_islands else set(), (n, nok), self._frame_colour(color), cut_from)
            for i in colour_ids:
                classes[i] = obj_cls
            apart |= colour_part_apart(cut_from, classes)
        stack_skip = {i for i, c in classes.items() if c != obj_cls}
        if cfg.stack_min_footprint_iou > 0:
            join_stacked(cfg, inst, stack_skip, P, valid_obj, up, _pixels_at(cfg.stack_min_px, h, w), apart)
        if cfg.nested_max_chromaticity > 0 and color is not None:
            join_nested(cfg, inst, stack_skip | set(colour_ids), P, valid_obj, up, _pixels_at(cfg.stack_min_px, h, w),
                        apart, color)
        lab_colour = self._frame_colour(color).lab(1.0) if color is not None and (
            cfg.colour_growth_delta > 0 or cfg.depthless_join) else None
        if color is not None and cfg.colour_growth_delta > 0:
            # the pixels given by distance shaped the colour parts; outside those parts, colour decides them now
            filled &= ~np.isin(inst, colour_ids)
            sem[filled] = 0
            inst[filled] = 0
            grow_by_colour(sem, inst, color, cfg.colour_growth_delta, int(round(cfg.colour_growth_px * w / 320.0)),
                           cfg.colour_growth_max_ratio, cfg.colour_growth_mean_delta, lab_colour)
        self._wall_holes(sem, inst)
        unlabelled_ids: list[int] = []
        if color is not None and cfg.unlabelled_parts:
            _, unlabelled_ids = unlabelled_colour_parts(
                cfg, sem, inst, color, valid, _pixels_at(cfg.strip_min_px, h, w),
                _pixels_at(cfg.unlabelled_parts_min_px, h, w), _pixels_at(cfg.unlabelled_parts_max_px, h, w),
                max(classes, default=0) + 1, obj_cls, self._frame_colour(color))
            for i in unlabelled_ids:
                classes[i] = obj_cls
        pale_ids: list[int] = []
        if color is not None and cfg.unlabelled_parts and cfg.pale_parts:
            _, pale_ids = pale_parts(cfg, sem, inst, valid, _pixels_at(cfg.unlabelled_parts_min_px, h, w),
                                     _pixels_at(cfg.pale_parts_max_px, h, w), max(classes, default=0) + 1, obj_cls,
                                     self._frame_colour(color))
            for i in pale_ids:
                classes[i] = obj_cls
        if color is not None and cfg.depthless_join:
            # parts cut out for their colour stay apart: a mixed edge can bring their median near their surroundings'
            objects = {i for i, c in classes.items() if c == obj_cls} - set(colour_ids)
            join_depthless(cfg, inst, lab_colour, valid, objects, _pixels_at(cfg.depthless_join_min_px, h, w),
                           max(1, round(cfg.depthless_join_min_contact_px * w / 320.0)))
        if cfg.pole_late_pass and cfg.pole_cell_m > 0 and floor_h is not None:
            self._late_poles(sem, inst, classes, valid_obj, P, height, up, floor_h)
        above_floor = height - floor_h if floor_h is not None else None
        lab_raw = self._frame_colour(color).lab_raw if color is not None else None
        if above_floor is not None and lab_raw is not None and cfg.leg_bar_min_contrast > 0:
            bar_maps: dict[int, np.ndarray] = {}     # bar contrast by angle, shared by the legs and the poles
            claim_leg_bars(cfg, sem, inst, classes, lab_raw, valid_obj, P, above_floor, up, cam.fx, cam.fy, bar_maps)
            if cfg.pole_trace_min_contrast > 0:
                trace_poles(cfg, sem, inst, classes, lab_raw, valid_obj, P, above_floor, up, cam.fx, cam.fy,
                            pale_ids, obj_cls, bar_maps)
        if above_floor is not None and cfg.top_joins:
            join_legs_and_tops(cfg, sem, inst, classes, valid_obj, P, above_floor, up,
                               set(colour_ids) | set(unlabelled_ids) | set(pale_ids), lab_raw,
                               _holders(inst, [region for region, _ in fine_tops]))
        # ids that lost all pixels to nothing cannot happen (components are non-empty), but keep it exact
        present = set(np.unique(inst).tolist()) - {0}
        classes = {i: c for i, c in classes.items() if i in present}
        return sem, inst, classes
