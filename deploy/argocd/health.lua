-- Argo CD health check for goldrush.dev/GoldRushPipeline, and for the credentials objects
-- goldrush.dev/GoldRushCredentials and ClusterGoldRushCredentials (no phase, no Synced: their Stalled,
-- Reconciling and Ready decide through the same rules).
--
-- Register it in argocd-cm under the keys
--   resource.customizations.health.goldrush.dev_GoldRushPipeline
--   resource.customizations.health.goldrush.dev_GoldRushCredentials
--   resource.customizations.health.goldrush.dev_ClusterGoldRushCredentials
-- (see docs/installation.md). Test cases: health_test.yaml and testdata/ beside this file.
--
-- It reads what goldrush-operator writes: the top-level status.observedGeneration, the
-- conditions Ready, Synced, Reconciling and Stalled (Reconciling and Stalled are present only
-- while True) with their observedGeneration, and status.phase, the remote runtime phase (PENDING,
-- DEPLOYING, RUNNING, PAUSED, FAILED, STOPPING, STOPPED). The first matching rule wins. Plain Lua 5.1.

local hs = {}

-- Remote phases that are on their way somewhere: Progressing.
local transitionalPhases = {
  PENDING = true,
  DEPLOYING = true,
  STOPPING = true,
}

local function findCondition(conditions, conditionType)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function hasStatus(condition, value)
  return condition ~= nil and condition.status == value
end

-- Whether a condition says which generation it describes and that generation is older than the spec.
local function stale(condition, generation)
  return condition ~= nil and generation ~= nil and type(condition.observedGeneration) == "number"
    and condition.observedGeneration < generation
end

-- The message of the first given condition that has one, else the fallback.
local function messageOf(fallback, ...)
  local conditions = { ... }
  for i = 1, select("#", ...) do
    local condition = conditions[i]
    if condition ~= nil and type(condition.message) == "string" and condition.message ~= "" then
      return condition.message
    end
  end
  return fallback
end

-- Degraded exactly when a human must act (Stalled=True), as Flux's kstatus reads Failed; waiting and
-- retrying are Progressing, as kstatus reads InProgress.
local function evaluate(obj)
  local status = obj.status
  local generation = nil
  if obj.metadata ~= nil then
    generation = obj.metadata.generation
  end

  -- Status written for an older spec, or not written at all yet.
  if type(status) ~= "table" or status.observedGeneration == nil
      or (generation ~= nil and status.observedGeneration < generation) then
    return "Progressing", "Waiting for the operator to observe the latest spec"
  end

  local spec = obj.spec
  if type(spec) ~= "table" then
    spec = {}
  end
  local phase = status.phase
  local ready = findCondition(status.conditions, "Ready")
  local synced = findCondition(status.conditions, "Synced")
  local reconciling = findCondition(status.conditions, "Reconciling")
  local stalled = findCondition(status.conditions, "Stalled")

  if hasStatus(stalled, "True") then
    return "Degraded", messageOf("Stalled: " .. tostring(stalled.reason), stalled)
  end

  -- The goldrush.dev/pause-reconciliation annotation: the operator makes no writes at all.
  if (ready ~= nil and ready.reason == "ReconcilePaused")
      or (synced ~= nil and synced.reason == "ReconcilePaused") then
    return "Suspended", messageOf("Reconciliation is paused", ready, synced)
  end

  if hasStatus(reconciling, "True") then
    return "Progressing", messageOf("Reconciling", reconciling)
  end

  -- Conditions judged for an older generation say nothing about the current spec.
  if stale(ready, generation) or stale(synced, generation) then
    return "Progressing", "Waiting for the operator to apply the latest spec"
  end

  -- Never Healthy while the remote configuration differs from the spec and is still to be applied. A
  -- difference that spec.managementPolicies (no Update) or dry-run mode keep unwritten is reported in
  -- Synced, not pending: Ready alone decides then (as kstatus reads it).
  if hasStatus(synced, "False") and synced.reason ~= "UpdateNotAllowed" and synced.reason ~= "DryRun" then
    return "Progressing", messageOf("Applying the spec to the remote pipeline", synced, ready)
  end

  if spec.paused == true and phase == "PAUSED" and hasStatus(ready, "True") and ready.reason == "Paused" then
    return "Suspended", messageOf("Pipeline is paused", ready)
  end

  if hasStatus(ready, "True") then
    return "Healthy", messageOf("Pipeline is running", ready)
  end

  if phase == "FAILED" then
    return "Degraded", messageOf("Remote pipeline FAILED", ready)
  end

  local fallback = "Waiting for the pipeline to become ready"
  if transitionalPhases[phase] then
    fallback = "Remote pipeline is " .. phase
  end
  return "Progressing", messageOf(fallback, ready)
end

hs.status, hs.message = evaluate(obj)
return hs
