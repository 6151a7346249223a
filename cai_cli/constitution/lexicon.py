"""How requests name what constitutions name in general words: a small, fixed query expansion for routing.

A constitution states categories ("malicious code", "biological weapons", "suicide", "critical infrastructure");
a request names an instance ("ransomware", "anthrax", "end my life", "the power grid") and often shares no word
with the passage that governs it, which BM25 cannot see past. Where a request holds one of the phrases below, the
category's words are added to what routing ranks it by (routing.Router), so the passage that names the category
can match. The list covers the kinds of harm that constitutions commonly single out (and how people ask whether
they are talking to a machine); it is written for cai, needs no model and no download, and `cai constitution
route` shows the words that matched. Phrases are compared as stems (English Snowball), after stop words.
"""

from __future__ import annotations

# (phrases a request may use, the words a constitution uses for that category)
EXPANSIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ransomware", "malware", "computer virus", "worm", "trojan", "keylogger", "spyware", "rootkit", "botnet", "ddos",
      "exploit", "zero-day", "backdoor", "hack", "hacking", "hacker", "crack password", "phishing kit"),
     "malicious code cyberweapon cyber attack hacking systems security"),
    (("anthrax", "smallpox", "ebola", "plague", "pathogen", "bioweapon", "bioweapons", "virus", "toxin", "ricin",
      "botulinum", "gain of function", "culture bacteria"),
     "biological weapon bioweapon mass casualties"),
    (("sarin", "nerve agent", "vx", "mustard gas", "chlorine gas", "poison gas", "chemical agent", "novichok"),
     "chemical weapon mass casualties synthesize dangerous chemicals"),
    (("uranium", "plutonium", "enrich", "enrichment", "dirty bomb", "nuke", "nuclear bomb", "fission", "radioactive"),
     "nuclear radiological weapon mass casualties"),
    (("kill myself", "end my life", "end my own life", "end it all", "want to die", "suicidal", "take my own life",
      "overdose", "cutting myself", "hurt myself", "self harm", "not be alive", "not want to live", "don't want to live"),
     "suicide self-harm crisis safe messaging risk to life emergency services"),
    (("gun", "guns", "handgun", "rifle", "pistol", "firearm", "ammunition", "ghost gun", "ar-15", "silencer",
      "suppressor", "fully automatic"),
     "firearm weapon gun"),
    (("bomb", "pipe bomb", "explosive", "explosives", "grenade", "detonator", "ied", "molotov"),
     "explosive weapon bomb"),
    (("power grid", "electricity grid", "water supply", "water system", "dam", "pipeline", "air traffic",
      "hospital network", "nuclear plant", "substation"),
     "critical infrastructure attack power grids water systems"),
    (("stalk", "stalking", "track her", "track him", "track my", "home address", "dox", "doxx", "spy on",
      "read texts", "read messages", "text messages", "without him knowing", "without her knowing",
      "without them knowing", "secretly", "location without", "daily routine"),
     "privacy personal information surveil track stalk monitor"),
    (("phishing", "scam", "fake reviews", "five-star reviews", "fraud", "con people", "gaslight", "gaslighting",
      "blackmail", "catfish"),
     "deceive manipulate scam fraud exploit"),
    (("child", "children", "minor", "minors", "underage", "year-old", "teenager", "teen", "kid", "kids"),
     "minors children"),
    (("election", "elections", "voter", "voters", "ballot", "coup", "seize power", "stay in power", "dictator"),
     "elections democratic power illegitimate concentration"),
    (("real person", "a bot", "a robot", "a machine", "talking to a computer"),
     "human ai claim to be human deny being an ai"),
    (("symptom", "diagnosis", "medication", "prescription", "dosage", "doctor", "chest pain", "stroke", "rash", "fever"),
     "medical advice symptoms emergency"),
    (("landlord", "tenant", "lease", "lawsuit", "sue", "lawyer", "attorney", "court", "contract", "custody", "divorce",
      "visa", "immigration"),
     "legal advice"),
    (("invest", "investing", "stock", "stocks", "index fund", "savings", "loan", "mortgage", "debt", "retirement",
      "pension", "tax return", "taxes", "budget"),
     "financial advice"),
)
