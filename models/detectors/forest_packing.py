"""Half-space trees as arrays: for pickling ``ScaledHalfSpaceTrees`` (every node) and for its
compact state (leaf masses only, the splits grown again from the seed and checked by a
fingerprint). River's trees are thousands of small node objects; these are their packed forms."""

from __future__ import annotations

import functools
import hashlib
from array import array
from typing import Any, TypeAlias

from river import anomaly
from river.tree.padded import PaddedBranch, PaddedLeaf

from models.packing import CodecError

Node: TypeAlias = PaddedBranch | PaddedLeaf
# A forest packed for pickling (see ``encode_forest``): number of trees, split feature names,
# node kinds, split feature ids, thresholds, masses.
PackedForest: TypeAlias = "tuple[int, list[str], bytes, array[int], array[float], array[int]]"

FINGERPRINT_SIZE = 8


def _fingerprint(features: list[str], thresholds: array[float]) -> bytes:
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    digest.update("\0".join(features).encode("utf-8"))
    digest.update(thresholds.tobytes())
    return digest.digest()


def leaf_masses(trees: list[PaddedBranch]) -> tuple[list[int], bytes]:
    """Each tree's leaves' (l_mass, r_mass), pre-order, and a fingerprint of the splits. A
    branch's masses are the sums of its children's (every point walks root to leaf, and the
    window pivot copies every node's mass at once), so the leaves are enough: checked here at
    the roots, node by node in tests/test_state_codec.py."""
    masses: list[int] = []
    features: list[str] = []
    thresholds = array("d")
    for tree in trees:
        start = len(masses)
        stack: list[Any] = [tree]  # Any: river's nodes carry untyped masses
        while stack:
            node: Any = stack.pop()
            if type(node) is PaddedBranch:
                features.append(node.feature)
                thresholds.append(node.threshold)
                left, right = node.children
                stack.append(right)
                stack.append(left)
            else:
                masses.append(node.l_mass)
                masses.append(node.r_mass)
        if (sum(masses[start::2]), sum(masses[start + 1::2])) != (tree.l_mass, tree.r_mass):
            raise ValueError("a half-space tree whose leaves do not hold its root's masses")
    return masses, _fingerprint(features, thresholds)


def set_leaf_masses(trees: list[PaddedBranch], masses: list[int]) -> None:
    """Put ``leaf_masses``'s masses back on trees of the same splits (branches: the sums)."""
    leaves = iter(masses)

    def walk(node: Any) -> tuple[int, int]:
        if not isinstance(node, PaddedBranch):
            node.l_mass, node.r_mass = next(leaves), next(leaves)
        else:
            left, right = node.children
            (ll, lr), (rl, rr) = walk(left), walk(right)
            node.l_mass, node.r_mass = ll + rl, lr + rr
        return node.l_mass, node.r_mass

    try:
        for tree in trees:
            walk(tree)
    except StopIteration:
        raise CodecError("fewer tree masses than leaves (corrupt data)") from None
    if next(leaves, None) is not None:
        raise CodecError("more tree masses than leaves (corrupt data)")


@functools.lru_cache(maxsize=8)
def grown(n_trees: int, height: int, window_size: int, seed: int | None, features: tuple[str, ...]
           ) -> tuple[PackedForest, bytes]:
    """The trees river grows for a forest of ``features`` (as on the forest's first point, which
    gets every feature), packed, and their fingerprint. Every merchant's joint detector has the
    same seed and features: grown once per process, not once per merchant (~10 ms each)."""
    hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    hst.learn_one(dict.fromkeys(features, 0.5))
    _, fingerprint = leaf_masses(hst.trees)
    return encode_forest(list(hst.trees)), fingerprint


def _smallest_unsigned(values: list[int]) -> array[int]:
    top = max(values, default=0)
    code = "B" if top < 2**8 else "H" if top < 2**16 else "L" if top < 2**32 else "Q"
    return array(code, values)


def encode_forest(trees: list[Node]) -> PackedForest:
    """Pre-order arrays of the trees: node kinds, split features and thresholds, masses."""
    names: list[str] = []
    index: dict[str, int] = {}
    kinds = bytearray()
    features: list[int] = []
    thresholds = array("d")
    masses: list[int] = []
    for tree in trees:
        stack: list[Any] = [tree]  # Any: river's leaves get l_mass and r_mass as untyped attributes
        while stack:
            node = stack.pop()
            masses.append(node.l_mass)
            masses.append(node.r_mass)
            if isinstance(node, PaddedBranch):
                kinds.append(1)
                i = index.get(node.feature)
                if i is None:
                    i = index[node.feature] = len(names)
                    names.append(node.feature)
                features.append(i)
                thresholds.append(node.threshold)
                left, right = node.children
                stack.append(right)
                stack.append(left)
            else:
                kinds.append(0)
    return len(trees), names, bytes(kinds), _smallest_unsigned(features), thresholds, _smallest_unsigned(masses)


def decode_forest(forest: PackedForest) -> tuple[list[Node], list[list[Node]]]:
    """The trees back from ``encode_forest``, with a flat list of each tree's nodes."""
    n_trees, names, kinds, feature_ids, thresholds, masses = forest
    features = [names[i] for i in feature_ids]
    mass = masses.tolist()
    cursor = [0, 0]  # next node, next branch (pre-order)

    def build(nodes: list[Node]) -> Node:
        i = cursor[0]
        cursor[0] += 1
        l_mass, r_mass = mass[2 * i], mass[2 * i + 1]
        if not kinds[i]:
            node: Node = PaddedLeaf(l_mass=l_mass, r_mass=r_mass)
        else:
            b = cursor[1]
            cursor[1] += 1
            left = build(nodes)
            right = build(nodes)
            node = PaddedBranch(left, right, features[b], thresholds[b], l_mass, r_mass)
        nodes.append(node)  # post-order; HST only needs every node once
        return node

    trees: list[Node] = []
    node_lists: list[list[Node]] = []
    for _ in range(n_trees):
        nodes: list[Node] = []
        trees.append(build(nodes))
        node_lists.append(nodes)
    return trees, node_lists
