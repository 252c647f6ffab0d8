"""Would moving sequences between SMs mid-scan close the forward's gap to 50 % of copy?

A fluid model of `scan_fused` at B = 8, E = 7680 on the H200 (results.md, run 16): 480 cubes
("chains", one per 128 channels of a batch row) over 132 SMs of 4 cube slots. An SM running k
cubes finishes k whole sequences in T[k] ms, measured when every SM runs at most k cubes
(B = 2, 4, 5-6, 7-8 at L = 4096), and shares that rate equally among them. Each chain is cut
into chunks; a finished chunk hands the chain (its state) to a waiting cube, which may sit on
another SM, after `overhead` ms of latency (state store and load, a new pipeline fill).
Policies: `fifo` (the longest-waiting cube takes it), `least` (the waiting cube on the SM running
the fewest cubes; needs the SM id). Prints the makespan in ms; without moves it is T[4].
    python3 experiments/scan-kernels/balance_sim.py
"""

T = {1: 0.666, 2: 0.871, 3: 1.167, 4: 1.54}  # ms for k sequences on one SM (run 16, runs 8/14)


def rate(k):
    return k / T[k] if k else 0.0


def makespan(chunks, policy="fifo", overhead=0.0, chains=480, sms=132, slots=4):
    ncubes = sms * slots
    sm_of = [q % sms for q in range(ncubes)]
    cube = [[c, chunks[0], 0.0] if c < chains else None for c in range(ncubes)]  # chain, work left, latency left
    waiting = [q for q in range(ncubes) if cube[q] is None]
    done = [0] * chains
    t, finished = 0.0, 0
    while finished < chains:
        active = [0] * sms
        for q, c in enumerate(cube):
            if c is not None and c[2] <= 0:
                active[sm_of[q]] += 1
        speed = lambda q: rate(active[sm_of[q]]) / active[sm_of[q]]
        step = min(c[2] if c[2] > 0 else c[1] / speed(q) for q, c in enumerate(cube) if c is not None)
        t += step
        ready = []
        for q, c in enumerate(cube):
            if c is None:
                continue
            if c[2] > 0:
                c[2] = max(0.0, c[2] - step)
                continue
            c[1] -= step * speed(q)
            if c[1] < 1e-12:
                done[c[0]] += 1
                if done[c[0]] == len(chunks):
                    finished += 1
                else:
                    ready.append(c[0])
                cube[q] = None
                waiting.append(q)
        for ch in ready:
            if policy == "fifo":
                q = waiting.pop(0)
            else:
                load = [0] * sms
                for qq, c in enumerate(cube):
                    if c is not None:
                        load[sm_of[qq]] += 1
                q = waiting.pop(min(range(len(waiting)), key=lambda i: load[sm_of[waiting[i]]]))
            cube[q] = [ch, chunks[done[ch]], overhead]
    return t


if __name__ == "__main__":
    print(f"no moves: {makespan([1.0]):.3f} ms; perfect balance: {480 / 132 / rate(4):.3f} ms")
    print("| policy | chunks per chain | 0 us per move | 2 us per move |")
    print("|---|---|---|---|")
    for policy in ("fifo", "least"):
        for k in (8, 16, 32):
            c = [1.0 / k] * k
            print(f"| {policy} | {k} | {makespan(c, policy):.3f} | {makespan(c, policy, 0.002):.3f} |")
