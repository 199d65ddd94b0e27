-- wrk: every request carries the next token of the file named after `--`
-- (side-by-side.sh and cpu-breakdown.sh: `wrk -s bench/tokens.lua URL -- tokens.txt`).
local tokens, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      tokens[n] = "Bearer " .. line
    end
  end
  if n == 0 then error("no tokens in " .. tostring(args[1])) end
end
function request()
  i = i % n + 1
  wrk.headers["Authorization"] = tokens[i]
  return wrk.format()
end
