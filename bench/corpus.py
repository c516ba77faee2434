"""A fixed prose corpus (written for this benchmark) from which prompts are cut.

Plain continuing text, not chat turns: an instruct model asked to continue prose
usually keeps writing until max_new_tokens, which keeps output lengths near the
requested ones without an ignore-EOS switch that the server does not offer.
"""

PARAGRAPHS = (
    "The old harbour town woke slowly in winter. Before the first bus arrived, the baker on the corner had "
    "already pulled three trays of bread from the oven, and the smell drifted down the hill to the fishermen "
    "who were untangling their nets by lamplight. Nobody spoke much at that hour. The gulls were louder than "
    "the people, and the sea, grey and patient, pushed against the stone wall the way it had for centuries.",
    "Early computers filled entire rooms and consumed as much electricity as a small factory. Engineers "
    "replaced burnt-out vacuum tubes every day, and a single calculation that a modern phone finishes in a "
    "blink could occupy a machine for hours. Yet the people who worked with them understood something that "
    "is easy to forget today: every instruction costs time, every byte of memory is precious, and a clever "
    "arrangement of the work often matters more than the raw speed of the hardware.",
    "To make a simple tomato soup, start by softening a chopped onion and two cloves of garlic in olive oil "
    "over low heat. Add a tin of whole tomatoes, a pinch of salt, a little sugar to balance the acidity and "
    "enough stock to cover everything. Let it simmer for twenty minutes, then blend until smooth. A spoonful "
    "of cream and a few torn basil leaves turn an ordinary weekday lunch into something people remember.",
    "The river begins as a thin stream high in the mountains, fed by snow that melts in late spring. It "
    "gathers water from a hundred small valleys as it descends, cutting through forests of pine and birch, "
    "passing villages where wooden bridges have been rebuilt after every great flood. By the time it reaches "
    "the plains it is wide and slow, carrying barges of grain toward the cities on the coast.",
    "Learning a musical instrument as an adult is humbling. The fingers refuse to obey, the rhythm slips away "
    "and the sound that comes out bears little resemblance to the recordings that inspired the attempt. But "
    "practice works in a strange, delayed way. A passage that seemed impossible on Monday becomes merely "
    "difficult by Thursday, and one morning, weeks later, it simply plays itself while the mind wanders.",
    "In the laboratory, the graduate student checked the temperature of the incubator for the third time "
    "that evening. The cultures had to stay at exactly thirty-seven degrees, and a failed heater the month "
    "before had ruined six weeks of work. She wrote the reading in the notebook, dated it, and added a short "
    "note about the colour of the medium, which had turned slightly more orange than expected.",
    "Trains crossing the continent used to take nearly a week. Passengers brought books, playing cards and "
    "baskets of food, and friendships formed in the dining car that lasted for decades. The landscape "
    "changed from farmland to desert to mountains so gradually that travellers often could not say when one "
    "had become the other. At night the carriages rocked gently and the wheels kept a steady, sleepy beat.",
    "A good explanation starts from what the listener already knows. Suppose you want to describe how a "
    "bank stores money. Most people imagine a vault full of coins, but the reality is a ledger: a long list "
    "of entries that say who owes what to whom. Once that idea is clear, interest, loans and even the "
    "creation of new money become variations on a single theme of keeping careful records.",
    "The garden had been neglected for years when the new owners arrived. Brambles covered the paths, the "
    "pond was green with algae and an apple tree leaned dangerously toward the shed. They started with the "
    "simplest task, clearing one corner completely, and planted beans and marigolds there. By the end of "
    "the summer the corner was the pride of the street, and the rest of the garden followed year by year.",
    "Weather forecasting relies on measurements taken all over the world at the same moments each day. "
    "Balloons carry instruments into the upper atmosphere, ships and buoys report conditions at sea, and "
    "satellites watch clouds move across continents. Computers combine these observations with the laws of "
    "physics to estimate how the air will move over the following days, and the estimates improve every year.",
    "The library closed at nine, but the caretaker let a few regular readers stay until ten. There was the "
    "retired teacher who was translating an old poem one line per evening, the young man preparing for an "
    "engineering exam and the woman who read every atlas on the shelves, one after another, making notes "
    "about rivers and borders that had changed names since the maps were printed.",
    "Mountain climbers speak of the summit as only the halfway point. Most accidents happen on the way down, "
    "when the body is tired, the light is fading and the excitement of success makes people careless. "
    "Experienced guides set a turnaround time before the climb begins and respect it even when the top "
    "seems close enough to touch, because the mountain will still be there next season.",
)

TEXT = " ".join(PARAGRAPHS)

# Fixed prompts for the greedy agreement check of weight formats.
AGREEMENT_PROMPTS = (
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "The main difference between a virus and a bacterium is",
    "To sort a list of numbers in Python, you can",
    "The three primary colours are",
    "Photosynthesis is the process by which plants",
    "The best way to learn a new language is",
    "In 1969, the first humans landed on the Moon. The mission",
)
