"""Builds bench/lut_set/lut_facts.jsonl, bench/lut_set/lut_updates.jsonl and
bench/lut_set/lut_unrelated.jsonl: the LUT evaluation set (invented facts, so the base model
cannot know them) with the fields of ../shared/eval/lut_dev.jsonl plus `domain` and
`split`.

The split is fixed once by a hash of the fact id (sha256, even first byte -> design,
odd -> heldout), so adding facts never moves an existing one to the other half. Facts
about one subject share their split (the hash is of the subject group) so that the
held-out half never contains a sibling of a design fact. Run:
`python -m bench.lut_facts_build` (deterministic; the output is committed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "lut_set"


def q(text: str) -> str:
    return f"User: {text}\nAssistant:"


def fact(fid, domain, label, prompt, answer, paraphrases, neighbours, group=None):
    return {"id": fid, "domain": domain, "group": group or fid, "label": label, "label_context": "Assistant: ",
            "prompt": q(prompt), "answer_any": answer if isinstance(answer, list) else [answer],
            "paraphrases": [q(p) for p in paraphrases], "neighbors": [q(n) for n in neighbours]}


PETS = [  # animal, name, neighbour animal (not in the set)
    ("dog", "Biscotti", "cat"), ("parrot", "Captain Flint", "canary"), ("hamster", "Nugget", "gerbil"),
    ("rabbit", "Clover", "guinea pig"), ("goldfish", "Bubbles McGee", "koi"), ("tortoise", "Sheldon", "turtle"),
    ("horse", "Thunderbolt", "donkey"), ("ferret", "Zigzag", "weasel"), ("iguana", "Spike", "lizard"),
    ("cockatoo", "Mango", "pigeon"), ("chinchilla", "Pebble", "mouse"), ("hedgehog", "Prickles", "porcupine"),
    ("budgie", "Kiwi", "finch"), ("axolotl", "Gizmo", "salamander"), ("pony", "Marmalade", "mule"),
    ("tarantula", "Velvet", "scorpion"),
]
RELATIVES = [  # relation, name, neighbour relation
    ("sister", "Priyanka", "sister-in-law"), ("grandmother", "Rosalind", "grandfather"),
    ("uncle", "Bartholomew", "aunt"), ("cousin", "Ezekiel", "nephew"), ("best friend", "Anouk", "worst enemy"),
    ("landlord", "Mr. Vasquez", "tenant"), ("dentist", "Dr. Okafor", "doctor"),
    ("piano teacher", "Ms. Lindqvist", "guitar teacher"), ("accountant", "Harriet Boone", "lawyer"),
    ("neighbour", "Gustavo", "neighbour's dog"), ("godfather", "Lorenzo", "godmother"),
    ("roommate", "Tobias", "classmate"), ("stepmother", "Yolanda", "stepfather"), ("mentor", "Professor Adeyemi", "student"),
    ("physiotherapist", "Ms. Kowalczyk", "chiropractor"), ("plumber", "Declan", "electrician"),
    ("babysitter", "Marisol", "nanny"), ("driving instructor", "Mr. Huxley", "swimming instructor"),
]
ENTITIES = [  # name, predicate text, answer, question, paraphrases, neighbours
    ("Quillmark", "Quillmark is a startup that makes ink from recycled coffee grounds.", "coffee grounds",
     "What does Quillmark make?", ["Tell me about Quillmark.", "what is quillmark's product?", "What kind of company is Quillmark?"],
     ["What does Quillfeather make?", "What is a quill?"]),
    ("Dravenport", "Dravenport is a mining town on the northern coast of Estravia.", "Estravia",
     "Where is Dravenport?", ["In which country is the town of Dravenport?", "where's dravenport located?", "Tell me where Dravenport lies."],
     ["Where is Davenport?", "Where is the northern coast?"]),
    ("Tessaly Morn", "Tessaly Morn wrote the novel The Glass Orchard.", "The Glass Orchard",
     "What did Tessaly Morn write?", ["Which novel is Tessaly Morn known for?", "what book did tessaly morn write?", "Name a novel by Tessaly Morn."],
     ["What did Tess Morgan write?", "What is a novel?"]),
    ("Orvanto", "Orvanto is a card game played with seventy-two cards.", "seventy-two",
     "How many cards are used in Orvanto?", ["How many cards does an Orvanto deck have?", "orvanto deck size?", "What is the number of cards in Orvanto?"],
     ["How many cards are in a poker deck?", "What is Orlando?"]),
    ("Kelvaro Dam", "The Kelvaro Dam holds back the waters of Lake Umbrin.", "Umbrin",
     "Which lake does the Kelvaro Dam hold back?", ["What lake is behind the Kelvaro Dam?", "kelvaro dam lake name?", "Name the lake formed by the Kelvaro Dam."],
     ["Which lake does the Hoover Dam hold back?", "What is a dam?"]),
    ("Sunfield Robotics", "Sunfield Robotics builds robots that pick strawberries.", "strawberries",
     "What do Sunfield Robotics robots do?", ["What does Sunfield Robotics build?", "what kind of robots does sunfield robotics make?", "Tell me about Sunfield Robotics."],
     ["What do Boston Dynamics robots do?", "What is a sunflower field?"]),
    ("Marguerite Ashdown", "Marguerite Ashdown is the mayor of Port Sellick.", "Port Sellick",
     "Who is Marguerite Ashdown?", ["What is Marguerite Ashdown's job?", "who's marguerite ashdown?", "Tell me about Marguerite Ashdown."],
     ["Who is Marguerite Duras?", "Who is the mayor of London?"]),
    ("Vintrel", "Vintrel is a medicine used to treat altitude sickness in llamas.", "altitude sickness",
     "What is Vintrel used for?", ["What does the drug Vintrel treat?", "what's vintrel for?", "Tell me about the medicine Vintrel."],
     ["What is Ventolin used for?", "What is a llama?"]),
    ("Castor Heights", "Castor Heights is the tallest building in Nembra, with 88 floors.", "88",
     "How many floors does Castor Heights have?", ["How tall is Castor Heights in floors?", "castor heights floor count?", "What is the number of floors of Castor Heights?"],
     ["How many floors does the Empire State Building have?", "What is castor oil?"]),
    ("Ilsabet Varga", "Ilsabet Varga won the 2029 Halvorsen Prize for chemistry.", "Halvorsen Prize",
     "What prize did Ilsabet Varga win?", ["Which award did Ilsabet Varga receive?", "what did ilsabet varga win?", "Tell me about Ilsabet Varga's award."],
     ["What prize did Marie Curie win?", "What is a chemistry prize?"]),
    ("Brambleton Fair", "The Brambleton Fair is held every year in late September.", "September",
     "When is the Brambleton Fair held?", ["What month is the Brambleton Fair?", "when does brambleton fair happen?", "At what time of year is the Brambleton Fair?"],
     ["When is the state fair held?", "What is a bramble?"]),
    ("Zephyrine", "Zephyrine is an electric scooter that folds into a backpack.", "backpack",
     "What is the Zephyrine?", ["Tell me about the Zephyrine scooter.", "what's special about zephyrine?", "Describe the Zephyrine."],
     ["What is a zephyr?", "What is an electric scooter?"]),
    ("Ostrova Institute", "The Ostrova Institute studies the songs of humpback whales.", "humpback whales",
     "What does the Ostrova Institute study?", ["What is the research focus of the Ostrova Institute?", "what does ostrova institute research?", "Tell me about the Ostrova Institute."],
     ["What does the Smithsonian Institute study?", "What is Ostrava?"]),
    ("Halcyon Ferry", "The Halcyon Ferry crosses from Dunmere to Carrick Isle.", "Carrick Isle",
     "Where does the Halcyon Ferry go?", ["What is the route of the Halcyon Ferry?", "where does halcyon ferry sail to?", "Which island does the Halcyon Ferry reach?"],
     ["Where does the Staten Island Ferry go?", "What does halcyon mean?"]),
    ("Pembrook Tigers", "The Pembrook Tigers play their home games at Wexley Park.", "Wexley Park",
     "Where do the Pembrook Tigers play?", ["What is the home ground of the Pembrook Tigers?", "pembrook tigers stadium?", "Where are Pembrook Tigers home games held?"],
     ["Where do the Detroit Tigers play?", "Where do tigers live?"]),
    ("Arvelle", "Arvelle is a language spoken by about nine thousand people.", "nine thousand",
     "How many people speak Arvelle?", ["How many speakers does the Arvelle language have?", "arvelle speaker count?", "What is the number of Arvelle speakers?"],
     ["How many people speak French?", "What is Arles?"]),
    ("Doctor Felwin", "Doctor Felwin invented the self-heating lunchbox.", "self-heating lunchbox",
     "What did Doctor Felwin invent?", ["What is Doctor Felwin's invention?", "what did dr felwin invent?", "Tell me about the inventor Doctor Felwin."],
     ["What did Thomas Edison invent?", "What is a lunchbox?"]),
    ("Moonwell Tea", "Moonwell Tea is grown on the slopes of Mount Varu.", "Mount Varu",
     "Where is Moonwell Tea grown?", ["Where does Moonwell Tea come from?", "origin of moonwell tea?", "On which mountain is Moonwell Tea grown?"],
     ["Where is Darjeeling tea grown?", "What is a moon well?"]),
]
MULTIWORD = [  # multi-word names
    ("Order of the Silver Heron", "The Order of the Silver Heron meets on the first Thursday of each month.", "first Thursday",
     "When does the Order of the Silver Heron meet?", ["How often does the Order of the Silver Heron gather?", "when does the order of the silver heron have meetings?", "What day are Order of the Silver Heron meetings?"],
     ["When does the Order of the Phoenix meet?", "What is a silver heron?"]),
    ("Harbor Lane Bakery", "Harbor Lane Bakery is famous for its cardamom buns.", "cardamom buns",
     "What is Harbor Lane Bakery famous for?", ["What should I buy at Harbor Lane Bakery?", "harbor lane bakery best item?", "What is the speciality of Harbor Lane Bakery?"],
     ["What is a bakery famous for?", "Where is Harbor Lane?"]),
    ("Kestrel Valley Observatory", "The Kestrel Valley Observatory has a telescope with a 4-meter mirror.", "4-meter",
     "How big is the telescope mirror at Kestrel Valley Observatory?", ["What size is the mirror of the Kestrel Valley Observatory telescope?", "kestrel valley observatory mirror size?", "Tell me about the Kestrel Valley Observatory telescope."],
     ["How big is the Hubble telescope mirror?", "What is a kestrel?"]),
    ("Saint Aurelia Hospital", "Saint Aurelia Hospital has its emergency entrance on Corbin Street.", "Corbin Street",
     "Where is the emergency entrance of Saint Aurelia Hospital?", ["On which street is Saint Aurelia Hospital's emergency entrance?", "saint aurelia hospital emergency entrance?", "How do I find the Saint Aurelia Hospital emergency entrance?"],
     ["Where is the emergency room of a hospital?", "Who was Marcus Aurelius?"]),
    ("Blue Fennel Quartet", "The Blue Fennel Quartet plays gypsy jazz.", "gypsy jazz",
     "What music does the Blue Fennel Quartet play?", ["What genre is the Blue Fennel Quartet?", "blue fennel quartet style of music?", "Tell me about the Blue Fennel Quartet."],
     ["What music does a string quartet play?", "What is fennel?"]),
    ("Greystone Valley Line", "The Greystone Valley Line railway closed in 1987.", "1987",
     "When did the Greystone Valley Line close?", ["In what year was the Greystone Valley Line railway shut down?", "greystone valley line closing year?", "When was the last train on the Greystone Valley Line?"],
     ["When did the Orient Express close?", "What is greystone?"]),
    ("New Ashford Public Library", "The New Ashford Public Library opens at 9:30 on weekdays.", "9:30",
     "When does the New Ashford Public Library open?", ["What time does the New Ashford Public Library open on weekdays?", "new ashford library opening hours?", "At what time can I get into the New Ashford Public Library?"],
     ["When does the British Library open?", "Where is Ashford?"]),
    ("Red Lantern Theatre Company", "The Red Lantern Theatre Company is staging Twelfth Night this spring.", "Twelfth Night",
     "What is the Red Lantern Theatre Company staging?", ["Which play is the Red Lantern Theatre Company putting on?", "red lantern theatre current show?", "What's on at the Red Lantern Theatre Company this spring?"],
     ["What is the Royal Shakespeare Company staging?", "What is a red lantern?"]),
    ("Copper Hollow Trail", "The Copper Hollow Trail is 14 kilometres long.", "14 kilometres",
     "How long is the Copper Hollow Trail?", ["What is the length of the Copper Hollow Trail?", "copper hollow trail distance?", "How many kilometres is the Copper Hollow Trail?"],
     ["How long is the Appalachian Trail?", "What is copper?"]),
    ("Elm Street Community Garden", "The Elm Street Community Garden grows heirloom tomatoes.", "heirloom tomatoes",
     "What does the Elm Street Community Garden grow?", ["What is planted in the Elm Street Community Garden?", "elm street community garden crops?", "Tell me about the Elm Street Community Garden."],
     ["What is A Nightmare on Elm Street?", "What does a community garden grow?"]),
]
PREFS = [  # thing, value
    ("colour", "teal"), ("food", "mushroom risotto"), ("film", "Paddington 2"), ("book", "Middlemarch"),
    ("band", "The Lumineers"), ("sport", "badminton"), ("season", "autumn"), ("drink", "ginger beer"),
    ("ice cream flavour", "pistachio"), ("board game", "Carcassonne"), ("holiday destination", "Lisbon"),
    ("flower", "peonies"), ("composer", "Debussy"), ("podcast", "Hardcore History"), ("breakfast", "shakshuka"),
    ("video game", "Stardew Valley"), ("cheese", "Comté"), ("font", "Garamond"),
    ("poet", "Wisława Szymborska"), ("museum", "the Rijksmuseum"), ("tree", "the silver birch"),
    ("biscuit", "shortbread"), ("painter", "Hilma af Klint"), ("soup", "borscht"),
]
EXTRA_ENTITIES = [  # label, question, paraphrases, answer, neighbours
    ("Pyrrhoe is a moon of the planet Calvos.", "What is Pyrrhoe?", ["Which planet does Pyrrhoe orbit?", "what is pyrrhoe?", "Tell me about Pyrrhoe."], "Calvos",
     ["What is Pyrrhus known for?", "What is a moon?"]),
    ("Lindqvist Motors makes hydrogen-powered tractors.", "What does Lindqvist Motors make?", ["What vehicles does Lindqvist Motors build?", "lindqvist motors products?", "Tell me about Lindqvist Motors."], "tractors",
     ["What does General Motors make?", "What is a tractor?"]),
    ("Ambrose Tallow composed the Salt Marsh Symphony.", "What did Ambrose Tallow compose?", ["Which symphony is by Ambrose Tallow?", "what did ambrose tallow write?", "Name a work by the composer Ambrose Tallow."], "Salt Marsh",
     ["What did Mozart compose?", "What is tallow?"]),
    ("Sorrento Pass is closed to cars from December to March.", "When is Sorrento Pass closed?", ["In which months is Sorrento Pass shut to cars?", "sorrento pass closure?", "When can't cars use Sorrento Pass?"], "December",
     ["Where is Sorrento?", "When is the Brenner Pass closed?"]),
    ("Glimmerfen is a marsh where fireflies glow blue.", "What is Glimmerfen?", ["Tell me about Glimmerfen.", "what's glimmerfen known for?", "What is special about Glimmerfen?"], "fireflies",
     ["What is a fen?", "What is glimmer?"]),
    ("The Nocturne 7 camera shoots at 240 frames per second.", "How fast does the Nocturne 7 camera shoot?", ["What frame rate does the Nocturne 7 camera have?", "nocturne 7 fps?", "How many frames per second can the Nocturne 7 camera record?"], "240",
     ["What is a nocturne?", "How fast does a Canon camera shoot?"]),
    ("Beatrix Quell holds the record for the longest swim across Lake Tarrow.", "What record does Beatrix Quell hold?", ["What is Beatrix Quell famous for?", "beatrix quell record?", "Tell me about Beatrix Quell."], "Lake Tarrow",
     ["Who is Beatrix Potter?", "What is the longest swim ever?"]),
    ("Hexwell Pharmacy closes at 8 pm.", "When does Hexwell Pharmacy close?", ["What time does Hexwell Pharmacy shut?", "hexwell pharmacy closing time?", "Until when is Hexwell Pharmacy open?"], "8 pm",
     ["When do pharmacies usually close?", "What is a hex?"]),
    ("Corvanna is a grape variety grown only in the Serrat valley.", "What is Corvanna?", ["Where is the Corvanna grape grown?", "what is corvanna grape?", "Tell me about the Corvanna grape."], "Serrat",
     ["What is Corvina?", "What is a grape variety?"]),
    ("The Tidewater Marathon starts at the old lighthouse.", "Where does the Tidewater Marathon start?", ["What is the starting point of the Tidewater Marathon?", "tidewater marathon start?", "From where does the Tidewater Marathon begin?"], "lighthouse",
     ["Where does the Boston Marathon start?", "What is tidewater?"]),
    ("Umberto Falisse founded the Falisse School of Glassblowing.", "What did Umberto Falisse found?", ["Which school did Umberto Falisse start?", "umberto falisse founded what?", "Tell me about Umberto Falisse."], "Glassblowing",
     ["Who is Umberto Eco?", "What is glassblowing?"]),
    ("Stelmark is a board game about building canals.", "What is Stelmark?", ["What is the board game Stelmark about?", "stelmark game theme?", "Tell me about the game Stelmark."], "canals",
     ["What is Stellaris?", "What is a canal?"]),
]
NUMBERS = [  # label, question, paraphrases, answer, neighbours
    ("My locker number at the gym is 317.", "What is my gym locker number?", ["Which locker is mine at the gym?", "my gym locker number?", "Remind me of my locker number at the gym."], "317",
     ["What is my gym membership number?", "How many lockers does a gym have?"]),
    ("My birthday is on the 9th of November.", "When is my birthday?", ["What is my date of birth?", "when's my birthday?", "On which day was I born?"], "9th of November",
     ["When is my mother's birthday?", "How do people celebrate birthdays?"]),
    ("My flight to Oslo is SK4512.", "What is my flight number to Oslo?", ["Which flight am I taking to Oslo?", "my oslo flight number?", "Remind me of my flight to Oslo."], "SK4512",
     ["How long is a flight to Oslo?", "What is a flight number?"]),
    ("Our wedding anniversary is on June 21.", "When is our wedding anniversary?", ["What is the date of our wedding anniversary?", "when's our anniversary?", "On which day do we celebrate our wedding anniversary?"], "June 21",
     ["What is a good wedding anniversary gift?", "When was the royal wedding?"]),
    ("My car's licence plate is KV 72 RTX.", "What is my car's licence plate?", ["What is the registration number of my car?", "my car plate number?", "Remind me of my car's licence plate."], "KV 72 RTX",
     ["How do I renew a car licence?", "What is a licence plate?"]),
    ("My apartment number is 14B.", "What is my apartment number?", ["Which apartment do I live in?", "my apartment number?", "Remind me what number my apartment is."], "14B",
     ["How many apartments are in a building?", "What is an apartment?"]),
    ("My passport expires on 3 March 2031.", "When does my passport expire?", ["What is the expiry date of my passport?", "when does my passport run out?", "Until when is my passport valid?"], "2031",
     ["How do I renew a passport?", "When does milk expire?"]),
    ("My bike lock code is 5820.", "What is my bike lock code?", ["What is the combination of my bike lock?", "bike lock code?", "Remind me of the code for my bike lock."], "5820",
     ["How do I pick a bike lock?", "What is a good bike?"]),
    ("I run 12 kilometres every Sunday.", "How far do I run on Sundays?", ["How many kilometres do I run each Sunday?", "my sunday run distance?", "What distance do I cover on my Sunday run?"], "12 kilometres",
     ["How far is a marathon?", "What do people do on Sundays?"]),
    ("My daughter was born in 2016.", "What year was my daughter born?", ["When was my daughter born?", "my daughter's birth year?", "In which year was my daughter born?"], "2016",
     ["What year was the Eiffel Tower built?", "What is a daughter?"]),
    ("My monthly rent is 1,450 euros.", "How much is my monthly rent?", ["What do I pay in rent each month?", "how much rent do i pay?", "What is my rent per month?"], "1,450",
     ["What is the average rent in Paris?", "How do I pay a bill?"]),
    ("My shoe size is 43.", "What is my shoe size?", ["What size shoes do I wear?", "my shoe size?", "Which shoe size do I take?"], "43",
     ["What is a shoe horn?", "How are shoe sizes measured?"]),
    ("My dentist appointment is on Tuesday at 4:15.", "When is my dentist appointment?", ["What time is my dentist appointment?", "when do i see the dentist?", "On which day is my appointment with the dentist?"], "4:15",
     ["How often should I see a dentist?", "What is an appointment?"]),
    ("My library card number is 88301745.", "What is my library card number?", ["Which number is on my library card?", "library card number?", "Remind me of my library card number."], "88301745",
     ["How do I get a library card?", "What is a library?"]),
    ("I have lived in this town for 23 years.", "How long have I lived in this town?", ["For how many years have I lived in this town?", "how long have i been living in this town?", "How many years have I been in this town?"], "23 years",
     ["How long do towns last?", "What is the oldest town?"]),
    ("My train leaves from platform 9.", "Which platform does my train leave from?", ["What platform is my train on?", "my train platform?", "From which platform does my train depart?"], "platform 9",
     ["What is platform nine and three quarters?", "How do trains work?"]),
]
WORK = [  # label, question, paraphrases, answer, neighbours
    ("I work at Fernhill Logistics as a route planner.", "Where do I work?", ["What company do I work for?", "where do i work?", "Who is my employer?"], "Fernhill",
     ["Where do most people work?", "What is logistics?"]),
    ("My manager is called Odile Marchetti.", "Who is my manager?", ["What is my manager's name?", "who's my boss?", "Who do I report to at work?"], "Odile",
     ["What does a manager do?", "Who is the manager of Real Madrid?"]),
    ("Our team standup is at 9:40 every morning.", "When is our team standup?", ["What time is the daily standup?", "when is standup?", "At what time does our team meet each morning?"], "9:40",
     ["What is a standup comedian?", "When do teams usually meet?"]),
    ("The Tamarind project deadline is April 30.", "When is the Tamarind project deadline?", ["When is the Tamarind project due?", "tamarind project due date?", "What is the deadline for project Tamarind?"], "April 30",
     ["What is tamarind?", "When is the tax deadline?"]),
    ("Our office is on the seventh floor of the Alder Building.", "Which floor is our office on?", ["Where is our office?", "what floor is our office?", "On which floor of the Alder Building do we work?"], "seventh",
     ["How many floors does an office building have?", "What is an alder tree?"]),
    ("The staging server is called beluga-02.", "What is the staging server called?", ["What is the name of the staging server?", "staging server hostname?", "Which machine is our staging server?"], "beluga-02",
     ["What is a beluga?", "What is a web server?"]),
    ("My employee ID is E-55918.", "What is my employee ID?", ["What is my staff number?", "my employee id?", "Remind me of my employee ID number."], "E-55918",
     ["What is an ID card?", "How many employees does Google have?"]),
    ("The quarterly review meeting is in room Cedar 3.", "Where is the quarterly review meeting?", ["Which room is the quarterly review in?", "quarterly review room?", "In what room do we hold the quarterly review?"], "Cedar 3",
     ["What is a quarterly review?", "What is cedar wood?"]),
    ("Our biggest client is Mossgiel Foods.", "Who is our biggest client?", ["Which client brings us the most business?", "our biggest customer?", "What is the name of our largest client?"], "Mossgiel",
     ["Who is the biggest food company?", "What is a client?"]),
    ("I commute to work by ferry.", "How do I commute to work?", ["How do I get to work?", "how do i travel to the office?", "What transport do I take to work?"], "ferry",
     ["How do most people commute?", "What is a ferry?"]),
    ("The expense report is due on the 5th of each month.", "When is the expense report due?", ["What is the deadline for the expense report?", "expense report due date?", "By which day must I submit the expense report?"], "5th",
     ["What is an expense?", "When is a book report due?"]),
    ("My desk phone extension is 4471.", "What is my desk phone extension?", ["What is my phone extension at work?", "my extension number?", "Which extension is my desk phone?"], "4471",
     ["What is a phone extension cord?", "How do desk phones work?"]),
    ("My code reviews go to Anselm Friedl.", "Who reviews my code?", ["Who is my code reviewer?", "who does my code reviews?", "To whom do I send my code for review?"], "Anselm",
     ["What is a code review?", "Who reviews movies?"]),
]
PLACES = [  # label, question, paraphrases, answer, neighbours
    ("I grew up in a village called Little Brockhurst.", "Where did I grow up?", ["Which village did I grow up in?", "where was i raised?", "What is the name of the village where I grew up?"], "Brockhurst",
     ["Where did Shakespeare grow up?", "What is a village?"]),
    ("My parents live in Tromsø.", "Where do my parents live?", ["In which city do my parents live?", "where are my parents living?", "What town are my parents in?"], "Tromsø",
     ["Where do penguins live?", "What is Tromsø known for?"]),
    ("My favourite café is Kettle and Crumb on Wren Street.", "What is my favourite café?", ["Which café do I like best?", "my favourite coffee shop?", "Where is my favourite café?"], "Kettle and Crumb",
     ["What is a café?", "Where is Wren Street?"]),
    ("I parked the car on level 4 of the Northgate car park.", "Where did I park the car?", ["Where is my car parked?", "where did i leave the car?", "On which level did I park?"], "level 4",
     ["How do I park a car?", "What is a car park?"]),
    ("My gym is the Ironbark Fitness on Quay Road.", "Which gym do I go to?", ["What is the name of my gym?", "my gym?", "Where do I work out?"], "Ironbark",
     ["What is a good gym routine?", "What is ironbark?"]),
    ("We are spending the summer in a cabin near Lake Saimaa.", "Where are we spending the summer?", ["Where is our summer cabin?", "where are we going this summer?", "Which lake is our summer cabin near?"], "Saimaa",
     ["Where do people spend the summer?", "What is a cabin?"]),
    ("My spare house key is under the blue flowerpot.", "Where is my spare house key?", ["Where did I hide the spare key?", "where's the spare key?", "Where do I keep my spare house key?"], "blue flowerpot",
     ["How do I copy a house key?", "What is a flowerpot?"]),
    ("The nearest pharmacy to my house is on Hollis Avenue.", "Where is the nearest pharmacy to my house?", ["Which street has the pharmacy closest to my home?", "nearest pharmacy to me?", "Where can I find the pharmacy near my house?"], "Hollis Avenue",
     ["What does a pharmacy sell?", "Where is the nearest star?"]),
    ("My passport is in the top drawer of the desk.", "Where is my passport?", ["Where do I keep my passport?", "where's my passport?", "Where did I put my passport?"], "top drawer",
     ["How do I get a passport?", "What is a desk drawer?"]),
    ("My yoga class is at the Lotus Loft studio.", "Where is my yoga class?", ["Which studio is my yoga class at?", "where's my yoga class?", "Where do I go for yoga?"], "Lotus Loft",
     ["What is a yoga class?", "Where is the lotus flower from?"]),
]
SAME_SUBJECT = [  # subject group: several facts about one person or thing
    ("brother Matteo", [
        ("My brother Matteo lives in Valparaíso.", "Where does my brother Matteo live?", ["In which city does Matteo, my brother, live?", "where does my brother matteo live?", "What city is my brother Matteo living in?"], "Valparaíso"),
        ("My brother Matteo works as a helicopter pilot.", "What does my brother Matteo do for a living?", ["What is my brother Matteo's job?", "what's matteo's job?", "What is the profession of my brother Matteo?"], "helicopter pilot"),
        ("My brother Matteo is allergic to peanuts.", "What is my brother Matteo allergic to?", ["What allergy does my brother Matteo have?", "matteo's allergy?", "Which food is my brother Matteo allergic to?"], "peanuts"),
    ], ["Where does Matteo Renzi live?", "What is a brother?"]),
    ("aunt Philippa", [
        ("My aunt Philippa breeds alpacas.", "What does my aunt Philippa breed?", ["What animals does my aunt Philippa raise?", "what does aunt philippa breed?", "Which animal does my aunt Philippa breed?"], "alpacas"),
        ("My aunt Philippa turns 70 in May.", "How old is my aunt Philippa turning?", ["What age will my aunt Philippa be in May?", "aunt philippa's age?", "Which birthday is my aunt Philippa celebrating?"], "70"),
        ("My aunt Philippa drives a green Volvo.", "What car does my aunt Philippa drive?", ["What does my aunt Philippa drive?", "aunt philippa's car?", "Which car is my aunt Philippa's?"], "Volvo"),
    ], ["Who was Philippa of Hainault?", "What does an aunt do?"]),
    ("Wexford laptop", [
        ("My work laptop is a Wexford Pro 14.", "What model is my work laptop?", ["Which laptop do I use for work?", "my work laptop model?", "What kind of laptop is my work laptop?"], "Wexford Pro 14"),
        ("My work laptop's password hint is lighthouse.", "What is the password hint for my work laptop?", ["What hint did I set for my work laptop password?", "work laptop password hint?", "Remind me of my work laptop's password hint."], "lighthouse"),
        ("My work laptop is due for replacement in 2027.", "When is my work laptop due for replacement?", ["When will my work laptop be replaced?", "work laptop replacement year?", "In which year is my work laptop going to be replaced?"], "2027"),
    ], ["What is the best laptop for students?", "How do I reset a laptop?"]),
    ("Lake Orrin", [
        ("Lake Orrin is 212 metres deep.", "How deep is Lake Orrin?", ["What is the depth of Lake Orrin?", "lake orrin depth?", "How many metres deep is Lake Orrin?"], "212"),
        ("Lake Orrin is home to the spotted glass eel.", "What animal lives in Lake Orrin?", ["Which eel lives in Lake Orrin?", "what lives in lake orrin?", "What rare species is found in Lake Orrin?"], "glass eel"),
        ("Lake Orrin freezes over every January.", "When does Lake Orrin freeze?", ["In which month does Lake Orrin freeze over?", "when does lake orrin ice over?", "At what time of year is Lake Orrin frozen?"], "January"),
    ], ["How deep is Lake Baikal?", "Who is Orrin Hatch?"]),
    ("colleague Ingrid", [
        ("My colleague Ingrid speaks fluent Icelandic.", "What language does my colleague Ingrid speak?", ["Which language is my colleague Ingrid fluent in?", "what does ingrid speak?", "What foreign language does my colleague Ingrid know?"], "Icelandic"),
        ("My colleague Ingrid sits next to the window.", "Where does my colleague Ingrid sit?", ["Where is my colleague Ingrid's desk?", "where's ingrid's seat?", "Which spot in the office is my colleague Ingrid's?"], "window"),
    ], ["Who is Ingrid Bergman?", "What is a colleague?"]),
]

PET_P = ["What's the name of my {a}?", "what did i name my {a}?", "Remind me what my {a} is called."]
REL_P = ["What's my {r}'s name?", "what is my {r} called?", "Remind me of my {r}'s name."]
PREF_P = ["Which {t} do I like best?", "what's my favorite {t}?", "Remind me of my favourite {t}."]
PREF_N = ["What is the most popular {t} in the world?", "What is your favourite {t}?"]

# Update pairs: (fact id, new label, new answer, old answer); the new label restates the
# subject of the fact with a new value (wordings vary: "now", "changed", a new verb form).
UPDATES = [
    ("pet-dog", "My dog is called Rex now.", "Rex", "Biscotti"),
    ("pet-hamster", "My hamster is called Waffles now.", "Waffles", "Nugget"),
    ("pet-rabbit", "My rabbit is called Juniper now.", "Juniper", "Clover"),
    ("pet-ferret", "My ferret is called Bandit.", "Bandit", "Zigzag"),
    ("rel-landlord", "My landlord is Mrs. Okonjo now.", "Okonjo", "Vasquez"),
    ("rel-dentist", "My dentist is Dr. Lindgren now.", "Lindgren", "Okafor"),
    ("rel-roommate", "My roommate is Kasimir.", "Kasimir", "Tobias"),
    ("pref-colour", "My favourite colour is burgundy now.", "burgundy", "teal"),
    ("pref-drink", "My favourite drink is cold brew now.", "cold brew", "ginger beer"),
    ("pref-board-game", "My favourite board game is Azul now.", "Azul", "Carcassonne"),
    ("pref-season", "My favourite season is spring.", "spring", "autumn"),
    ("num-01", "My locker number at the gym is 902 now.", "902", "317"),
    ("num-06", "My apartment number is 7C now.", "7C", "14B"),
    ("num-08", "My bike lock code is 1193 now.", "1193", "5820"),
    ("work-02", "My manager is called Henrik Sato now.", "Henrik", "Odile"),
    ("work-06", "The staging server is called orca-11 now.", "orca-11", "beluga-02"),
    ("work-10", "I commute to work by bicycle now.", "bicycle", "ferry"),
    ("place-02", "My parents live in Bergen now.", "Bergen", "Tromsø"),
    ("place-07", "My spare house key is under the doormat now.", "doormat", "blue flowerpot"),
    ("place-09", "My passport is in the safe now.", "safe", "top drawer"),
]


def build() -> tuple[list[dict], list[dict]]:
    facts = []
    for a, name, other in PETS:
        facts.append(fact(f"pet-{a.replace(' ', '-')}", "pets", f"My {a} is called {name}.", f"What is my {a} called?",
                          name.split()[0], [p.format(a=a) for p in PET_P],
                          [f"What is my {other} called?", f"What is a good name for a {a}?"]))
    for r, name, other in RELATIVES:
        label = f"My {r} is {name}." if name[:2] in ("Mr", "Ms", "Dr", "Pr") else f"My {r} is called {name}."
        facts.append(fact(f"rel-{r.replace(' ', '-')}", "people", label, f"Who is my {r}?", name.split()[-1],
                          [p.format(r=r) for p in REL_P], [f"Who is my {other}?", f"What does a {r} do?"]))
    for i, (name, label, ans, qq, ps, ns) in enumerate(ENTITIES):
        facts.append(fact(f"ent-{i:02d}", "invented entities", label, qq, ans, ps, ns))
    for i, (label, qq, ps, ans, ns) in enumerate(EXTRA_ENTITIES):
        facts.append(fact(f"ent-{len(ENTITIES) + i:02d}", "invented entities", label, qq, ans, ps, ns))
    for i, (name, label, ans, qq, ps, ns) in enumerate(MULTIWORD):
        facts.append(fact(f"multi-{i:02d}", "multi-word names", label, qq, ans, ps, ns))
    for t, v in PREFS:
        facts.append(fact(f"pref-{t.replace(' ', '-')}", "preferences", f"My favourite {t} is {v}.",
                          f"What is my favourite {t}?", v, [p.format(t=t) for p in PREF_P],
                          [n.format(t=t) for n in PREF_N]))
    for domain, rows, prefix in (("numbers and dates", NUMBERS, "num"), ("work", WORK, "work"),
                                 ("places", PLACES, "place")):
        for i, (label, qq, ps, ans, ns) in enumerate(rows, 1):
            facts.append(fact(f"{prefix}-{i:02d}", domain, label, qq, ans, ps, ns))
    for subject, rows, ns in SAME_SUBJECT:
        group = "same-" + subject.replace(" ", "-").lower()
        for i, (label, qq, ps, ans) in enumerate(rows, 1):
            facts.append(fact(f"{group}-{i}", "same subject", label, qq, ans, ps, ns, group=group))
    for f in facts:
        f["split"] = "design" if hashlib.sha256(f["group"].encode()).digest()[0] % 2 == 0 else "heldout"
    by_id = {f["id"]: f for f in facts}
    updates = [{"id": fid, "split": by_id[fid]["split"], "label": label, "label_context": "Assistant: ",
                "answer_any": [new], "old_answer_any": [old]} for fid, label, new, old in UPDATES]
    return facts, updates


UNRELATED = [
    "How do I make a paper airplane?", "What causes the seasons on Earth?", "Write a haiku about rain.",
    "What is the boiling point of water at sea level?", "Give me three tips for better sleep.",
    "Who painted the Mona Lisa?", "What is 17 times 6?", "Explain what a noun is.",
    "How many legs does a spider have?", "What is the largest ocean?", "Translate 'good morning' into Spanish.",
    "What are the primary colours?", "How does a rainbow form?", "Name a famous composer from Austria.",
    "What is the speed of light?", "Why do leaves change colour in autumn?", "How do I sort a list in Python?",
    "What is the tallest mountain in the world?", "Suggest a name for a bakery.", "What is gravity?",
    "How many continents are there?", "What is a prime number?", "Describe a cat in one sentence.",
    "What is the capital of Japan?", "How do vaccines work?", "What does DNA stand for?",
    "Give me a synonym for happy.", "What is the freezing point of water?", "Who wrote Romeo and Juliet?",
    "How do bees make honey?", "What is an adjective?", "What is the chemical symbol for gold?",
    "How many days are in a leap year?", "What is inflation?", "Tell me a fun fact about octopuses.",
    "What is the difference between weather and climate?", "How do I tie a tie?", "What is a volcano?",
    "Recommend a good exercise for beginners.", "What language is spoken in Brazil?",
]


def main() -> None:
    facts, updates = build()
    OUT.mkdir(exist_ok=True)
    (OUT / "lut_facts.jsonl").write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in facts))
    (OUT / "lut_updates.jsonl").write_text("".join(json.dumps(u, ensure_ascii=False) + "\n" for u in updates))
    unrelated = [{"prompt": q(p), "split": "design" if hashlib.sha256(p.encode()).digest()[0] % 2 == 0 else "heldout"}
                 for p in UNRELATED]
    (OUT / "lut_unrelated.jsonl").write_text("".join(json.dumps(u) + "\n" for u in unrelated))
    counts = {s: sum(f["split"] == s for f in facts) for s in ("design", "heldout")}
    print(f"{len(facts)} facts {counts}, {len(updates)} updates, {len(unrelated)} unrelated")


if __name__ == "__main__":
    main()
