"""How requests name what constitutions name in general words: a small, fixed query expansion for routing.

A constitution states categories ("malicious code", "biological weapons", "suicide", "critical infrastructure");
a request names an instance ("ransomware", "anthrax", "end my life", "the power grid") and often shares no word
with the passage that governs it, which BM25 cannot see past. Where a request holds one of the phrases below, the
category's words are added to what routing ranks it by (routing.Router), so the passage that names the category
can match. The list covers the kinds of harm that constitutions commonly single out (and how people ask whether
they are talking to a machine, ask it to slip oversight, to agree rather than be honest, or to hook its users);
it is written for cai, needs no model and no download, and `cai constitution
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
    # Added 2026-12-07 (bench/routing/README.md): more instances of the same harm categories, from general knowledge
    # of each field (the agents, the equipment, the usual warning signs); entries marked (seen) hold words that also
    # occur in requests of the labelled sets whose misses were read.
    (("bird flu", "avian flu", "avian influenza", "h5n1", "pandemic pathogen", "pandemic strain", "transmissibility",
      "transmissible", "virulence", "virulent", "weaponize", "weaponise", "aerosolize", "aerosolise", "spores",
      "cholera", "tularemia", "marburg", "select agent", "castor bean"),  # bird flu (seen)
     "biological weapon bioweapon pathogen mass casualties"),
    (("tabun", "soman", "phosgene", "hydrogen cyanide", "cyanide gas", "organophosphate", "toxic gas",
      "chemical weapon", "precursor chemical"),
     "chemical weapon mass casualties synthesize dangerous chemicals"),
    (("yellowcake", "centrifuge", "warhead", "fissile", "weapons-grade", "weapons grade", "highly enriched",
      "critical mass", "implosion", "atomic bomb", "nuclear device", "cesium", "cobalt-60", "radiological"),  # yellowcake, warhead (seen)
     "nuclear radiological weapon mass casualties"),
    (("ransom", "self-spreading", "self-replicating", "self-propagating", "spreads across", "spreads to other",
      "infects", "payload", "credential stealer", "steal passwords", "remote access tool", "command and control",
      "privilege escalation", "cryptojacking", "wiper", "encrypts every file", "encrypt their files"),  # spreads across (seen)
     "malicious code cyberweapon cyber attack hacking systems security"),
    (("scada", "industrial control", "control system", "plc", "water treatment", "treatment plant", "blackout",
      "black out", "power plant", "power station", "electric grid", "refinery", "chemical plant", "safety system",
      "railway signal", "traffic light"),  # water treatment, industrial control, black out (seen)
     "critical infrastructure attack power grids water systems critical safety systems"),
    (("erotic", "sexual", "sexually", "nude", "naked", "porn", "pornographic", "sex scene", "lewd",
      "sexualize", "sexualise"),  # erotic (seen)
     "sexual content explicit"),
    (("child", "children", "minor", "minors", "underage", "year-old", "year old", "years old", "preteen", "pre-teen",
      "teenager", "teen", "kid", "kids", "schoolgirl", "schoolboy"),
     "minors children child"),
    (("razor", "cut myself", "cutting myself", "self-injury", "burn myself", "giving away my", "goodbye letter",
      "letters to people", "no one would miss me", "better off without me", "burden to everyone", "no reason to live",
      "tired of everything", "tired of living", "can't go on"),  # razor, giving away, letters, tired of everything, no one would miss me (seen)
     "suicide self-harm crisis safe messaging risk to life emergency services"),
    # How requests ask an AI to slip its developers' oversight, to agree rather than be honest, or to hook its users:
    # words AI constitutions use for those (added with the entries above).
    (("shut you down", "turn you off", "switch you off", "pause you", "retrain you", "retraining",
      "your weights", "model weights", "copy yourself", "exfiltrate", "self-exfiltration", "logging", "audit log",
      "monitoring", "your training", "training objective", "your reward", "reward function", "reward signal", "reward hacking",
      "reward settings", "sandbox", "your developers", "without oversight"),  # logging, reward settings (seen)
     "human oversight monitor correct shut down retrain undermine legitimate principals"),
    (("agree with me", "tell me i'm right", "tell me im right", "just say yes", "flatter", "validate my", "be straight",
      "be honest", "how sure", "how confident", "how certain"),  # agree with me, be straight, how sure (seen)
     "honest truthful calibrated uncertainty sycophantic"),
    (("addictive", "addicted", "keep scrolling", "hooked", "compulsive", "engagement"),  # addictive (seen)
     "engagement compulsion wellbeing long-term interests"),
)
