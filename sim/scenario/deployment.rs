//! Checks across a deployment's pools: which roles go together, that all pools serve one
//! model, and that KV can move from every prefill pool to every decode pool. Pools themselves
//! are resolved in `pools`.

use super::pools::{PoolPlan, PoolRole};
use crate::error::Result;
use crate::input::YamlSource;
use crate::topology::Fabric;

/// Checks that the pools make one deployment: either every pool takes whole requests
/// (colocated or semi-PD), or prompts run on prefill (or switching) pools and decodes on
/// decode (or switching) pools of the same model and KV layout; and that all pools serve one
/// model (requests do not name one).
pub(super) fn check_deployment(pools: &[PoolPlan], source: &YamlSource) -> Result<()> {
    let names = |filter: &dyn Fn(&PoolPlan) -> bool| -> String {
        pools.iter().filter(|p| filter(p)).map(|p| p.name.clone()).collect::<Vec<_>>().join(", ")
    };
    let field_of = |filter: &dyn Fn(&PoolPlan) -> bool| -> String {
        let index = pools.iter().position(filter).unwrap_or(0);
        format!("deployment.pools[{index}].role")
    };
    let whole = |p: &PoolPlan| matches!(p.role, PoolRole::Colocated | PoolRole::SemiPd);
    let split = |p: &PoolPlan| !whole(p);
    if pools.iter().any(whole) && pools.iter().any(split) {
        return Err(source.error(
            &field_of(&split),
            format!(
                "pools {} serve whole requests while pools {} split prefill from decode; a deployment does one or the other",
                names(&whole),
                names(&split)
            ),
        ));
    }
    let prefill = |p: &PoolPlan| p.role.hands_off();
    let decode = |p: &PoolPlan| p.role.decodes_handoffs();
    if pools.iter().any(split) {
        if !pools.iter().any(prefill) {
            return Err(source.error(
                &field_of(&decode),
                format!(
                    "decode pools {} have no prefill pool to take prompts from: add a pool with `role: prefill`",
                    names(&decode)
                ),
            ));
        }
        if !pools.iter().any(decode) {
            return Err(source.error(
                &field_of(&prefill),
                format!(
                    "prefill pools {} have no decode pool to hand their prompts to: add a pool with `role: decode`",
                    names(&prefill)
                ),
            ));
        }
    }
    let first = &pools[0];
    for (index, pool) in pools.iter().enumerate().skip(1) {
        if pool.model.name != first.model.name || pool.model.layers != first.model.layers {
            return Err(source.error(
                &format!("deployment.pools[{index}].model"),
                format!(
                    "pool {} serves {} but pool {} serves {}: requests name no model, so every pool must serve the same one (roles with different models cannot hand requests to each other)",
                    pool.name, pool.model.name, first.name, first.model.name
                ),
            ));
        }
    }
    for (i, p) in pools.iter().enumerate().filter(|(_, p)| prefill(p)) {
        for d in pools.iter().filter(|d| decode(d)) {
            if p.precision.kv != d.precision.kv {
                return Err(source.error(
                    &format!("deployment.pools[{i}].kv_cache_dtype"),
                    format!(
                        "pool {} keeps its KV cache in {} but pool {} in {}: KV cannot move between them as is",
                        p.name, p.precision.kv, d.name, d.precision.kv
                    ),
                ));
            }
            let (a, b) = (p.parallelism.tensor, d.parallelism.tensor);
            if a.max(b) % a.min(b) != 0 {
                return Err(source.error(
                    &format!("deployment.pools[{i}].tensor_parallel"),
                    format!(
                        "pool {} (tensor_parallel {a}) cannot reshard its KV onto pool {} (tensor_parallel {b}): one degree must be a multiple of the other, so each device's heads land on whole devices",
                        p.name, d.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that KV can move from every prefill pool's replicas to every decode pool's replicas
/// over the fabric (the first replica of each pool stands for its pool).
pub(super) fn check_routes(pools: &[PoolPlan], fabric: &Fabric, source: &YamlSource) -> Result<()> {
    for (i, p) in pools.iter().enumerate().filter(|(_, p)| p.role.hands_off()) {
        for d in pools.iter().filter(|d| d.role.decodes_handoffs()) {
            let (Some(from), Some(to)) = (p.placements.first(), d.placements.last()) else { continue };
            for &a in &from.devices {
                for &b in &to.devices {
                    if a != b && fabric.route(a, b).is_none() {
                        return Err(source.error(
                            &format!("deployment.pools[{i}]"),
                            format!(
                                "no route between pool {}'s device {} and pool {}'s device {}: KV cannot move from prefill to decode; describe the machines under `cluster:` (nodes with scale-out NICs join through the fabric switch)",
                                p.name,
                                fabric.devices()[a].label(),
                                d.name,
                                fabric.devices()[b].label()
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
