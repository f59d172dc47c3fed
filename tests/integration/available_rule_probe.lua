-- Test probe, loaded after _available_rule.lua like the production scripts: for each id in
-- ARGV, {available (0|1), effective max} as the prelude decides them. Writes nothing.
local out = {}
for i, id in ipairs(ARGV) do
  out[i] = {is_available(id) and 1 or 0, effective_max(id)}
end
return out
